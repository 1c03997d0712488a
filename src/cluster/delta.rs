//! Versioned assignments on the wire: what changed between two versions (a [`Delta`]), the
//! master's recent history of them, and the member's side that rebuilds the full assignment
//! from deltas or from a snapshot sent in chunks. Pure: no I/O, no clock.
//!
//! A change of one element costs one delta entry, whatever the inventory's size. A member
//! whose version the master no longer has in its history (restarted, fenced for long, or just
//! joined) gets a snapshot, cut into chunks of bounded size so that no body grows with the pool.
//!
//! Authority: a member obeys a push only from the member it believes is master of the push's
//! term, and only if that term is the newest it has seen and the term's claimant is that same
//! member. Whether the claimed sender is who it says is the transport's business (mTLS).

use super::election::{term_owner, term_text};
use super::protocol::{Assignment, AssignmentId, Credentials, Handover};
use crate::model::{Element, ServerId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// What changed from version `base` to version `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct Delta {
    pub(crate) base: AssignmentId,
    pub(crate) id: AssignmentId,
    /// Elements new in the inventory, or whose definition changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) upsert: Vec<Element>,
    /// Elements that left the inventory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) remove: Vec<Arc<str>>,
    /// New owners: elements that moved or are new.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) owners: Vec<(Arc<str>, ServerId)>,
    /// Elements left without owner (no member could take them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) unowned: Vec<Arc<str>>,
    /// The pool's whole set of credential profiles, when it changed: a handful of profiles,
    /// changed rarely, so no finer delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credentials: Option<Credentials>,
}

impl Delta {
    /// How many elements (and profiles) it touches: the measure of its cost.
    pub(crate) fn len(&self) -> usize {
        self.upsert.len()
            + self.remove.len()
            + self.owners.len()
            + self.unowned.len()
            + self.credentials.as_ref().map_or(0, BTreeMap::len)
    }
}

/// The delta that turns `prev` into `next`.
pub(crate) fn diff(prev: &Assignment, next: &Assignment) -> Delta {
    let before: BTreeMap<&str, &Element> = prev.elements.iter().map(|e| (&*e.name, e)).collect();
    let after: BTreeMap<&str, &Element> = next.elements.iter().map(|e| (&*e.name, e)).collect();
    let upsert = next
        .elements
        .iter()
        .filter(|e| before.get(&*e.name) != Some(e))
        .cloned()
        .collect();
    let remove = prev
        .elements
        .iter()
        .filter(|e| !after.contains_key(&*e.name))
        .map(|e| e.name.clone())
        .collect();
    let owners = next
        .owners
        .iter()
        .filter(|(name, to)| prev.owners.get(*name) != Some(to))
        .map(|(name, to)| (name.clone(), *to))
        .collect();
    let unowned = prev
        .owners
        .keys()
        .filter(|name| !next.owners.contains_key(*name) && after.contains_key(&***name))
        .cloned()
        .collect();
    let credentials = if prev.credentials == next.credentials {
        None
    } else {
        Some(next.credentials.clone().unwrap_or_default())
    };
    Delta {
        base: prev.id,
        id: next.id,
        upsert,
        remove,
        owners,
        unowned,
        credentials,
    }
}

/// Why a push or chunk was not obeyed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "term {} is older than term {} seen here",
        term_text(*.got),
        term_text(*.have)
    )]
    StaleTerm { got: u64, have: u64 },
    #[error(
        "term {} is not yet known here (newest seen {})",
        term_text(*.got),
        term_text(*.have)
    )]
    UnknownTerm { got: u64, have: u64 },
    #[error(
        "server {from} is not the master of term {} as this server knows it",
        term_text(*.term)
    )]
    NotMaster { from: ServerId, term: u64 },
    #[error("delta from version {base:?} does not apply to version {have:?} held here")]
    Gap {
        base: AssignmentId,
        have: AssignmentId,
    },
    #[error("broken delta chain at {at:?}")]
    Chain { at: AssignmentId },
    #[error("snapshot chunk {index} of {id:?} out of order")]
    ChunkOrder { id: AssignmentId, index: u32 },
    #[error("snapshot larger than {0} elements")]
    TooLarge(usize),
}

impl Refusal {
    /// Metric label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::StaleTerm { .. } => "stale_term",
            Refusal::UnknownTerm { .. } => "unknown_term",
            Refusal::NotMaster { .. } => "not_master",
            Refusal::Gap { .. } => "gap",
            Refusal::Chain { .. } => "chain",
            Refusal::ChunkOrder { .. } => "chunk_order",
            Refusal::TooLarge(_) => "too_large",
        }
    }
}

/// Who this member believes is master, and of which term (its newest seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authority {
    pub(crate) term: u64,
    pub(crate) master: Option<ServerId>,
}

impl Authority {
    /// Obey `from` for an assignment of `term` only if `from` claimed that term, this server
    /// follows `from`, and no newer term is known here.
    pub(crate) fn check(&self, from: ServerId, term: u64) -> Result<(), Refusal> {
        if term < self.term {
            return Err(Refusal::StaleTerm {
                got: term,
                have: self.term,
            });
        }
        if term > self.term {
            return Err(Refusal::UnknownTerm {
                got: term,
                have: self.term,
            });
        }
        if self.master != Some(from) || term_owner(term) != from {
            return Err(Refusal::NotMaster { from, term });
        }
        Ok(())
    }
}

/// Master -> member: the deltas from `base` (the version the member holds) to `id`. Empty
/// when the member holds `id` already but does not poll by it (restarted, fenced).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Push {
    /// The master that sends it (the claimant of `id.term`).
    pub(crate) from: ServerId,
    pub(crate) base: AssignmentId,
    pub(crate) id: AssignmentId,
    #[serde(default)]
    pub(crate) deltas: Vec<Delta>,
    #[serde(default)]
    pub(crate) handover: Handover,
}

/// Master -> member: one piece of a whole assignment. Chunks go in order, one at a time;
/// the member applies the assignment when the `last` arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Chunk {
    pub(crate) from: ServerId,
    pub(crate) id: AssignmentId,
    pub(crate) index: u32,
    pub(crate) last: bool,
    #[serde(default)]
    pub(crate) elements: Vec<Element>,
    #[serde(default)]
    pub(crate) owners: Vec<(Arc<str>, ServerId)>,
    #[serde(default)]
    pub(crate) handover: Handover,
    /// The pool's credential profiles, on the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credentials: Option<Credentials>,
}

/// Member -> master: what it holds and polls by after a push or chunk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Ack {
    pub(crate) known: AssignmentId,
    pub(crate) applied: AssignmentId,
}

/// What a push gives the member: the full assignment to poll by and the hand-over with it.
pub(crate) type Rebuilt = Option<(Assignment, Handover)>;

/// Rebuilds the assignment a push describes from the one `held` here. `None`: nothing newer
/// (a duplicate or a reordered old push), not an error.
pub(crate) fn on_push(held: &Assignment, auth: Authority, push: Push) -> Result<Rebuilt, Refusal> {
    auth.check(push.from, push.id.term)?;
    if push.id < held.id || (push.id == held.id && !push.deltas.is_empty()) {
        return Ok(None);
    }
    if push.base != held.id {
        return Err(Refusal::Gap {
            base: push.base,
            have: held.id,
        });
    }
    let mut at = push.base;
    for d in &push.deltas {
        if d.base != at || d.id <= d.base {
            return Err(Refusal::Chain { at });
        }
        at = d.id;
    }
    if at != push.id {
        return Err(Refusal::Chain { at });
    }
    let mut elements: BTreeMap<Arc<str>, Element> = held
        .elements
        .iter()
        .map(|e| (e.name.clone(), e.clone()))
        .collect();
    let mut owners = held.owners.clone();
    let mut credentials = held.credentials.clone();
    for d in push.deltas {
        if d.credentials.is_some() {
            credentials = d.credentials;
        }
        for name in &d.remove {
            elements.remove(name);
            owners.remove(name);
        }
        for name in &d.unowned {
            owners.remove(name);
        }
        for e in d.upsert {
            elements.insert(e.name.clone(), e);
        }
        for (name, to) in d.owners {
            // An owner for an element not in the inventory would poll nothing: ignore it.
            if elements.contains_key(&name) {
                owners.insert(name, to);
            }
        }
    }
    Ok(Some((
        Assignment {
            id: push.id,
            elements: elements.into_values().collect(),
            owners,
            credentials,
        },
        push.handover,
    )))
}

/// A snapshot being received.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    current: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    from: ServerId,
    id: AssignmentId,
    next: u32,
    elements: BTreeMap<Arc<str>, Element>,
    owners: BTreeMap<Arc<str>, ServerId>,
    handover: Handover,
    credentials: Option<Credentials>,
}

/// Bound on a staged snapshot, so a hostile sender cannot make a member hoard memory.
pub(crate) const MAX_STAGED: usize = 2_000_000;

impl Staging {
    /// Takes one chunk; the whole assignment once the last one arrived.
    pub(crate) fn on_chunk(
        &mut self,
        held: &Assignment,
        auth: Authority,
        chunk: Chunk,
    ) -> Result<Rebuilt, Refusal> {
        auth.check(chunk.from, chunk.id.term)?;
        if chunk.index == 0 {
            self.current = Some(Partial {
                from: chunk.from,
                id: chunk.id,
                next: 0,
                elements: BTreeMap::new(),
                owners: BTreeMap::new(),
                handover: Handover::default(),
                credentials: chunk.credentials.clone(),
            });
        }
        let Some(p) = self
            .current
            .as_mut()
            .filter(|p| p.id == chunk.id && p.from == chunk.from && p.next == chunk.index)
        else {
            self.current = None;
            return Err(Refusal::ChunkOrder {
                id: chunk.id,
                index: chunk.index,
            });
        };
        if p.elements.len().saturating_add(chunk.elements.len()) > MAX_STAGED {
            self.current = None;
            return Err(Refusal::TooLarge(MAX_STAGED));
        }
        p.next = p.next.saturating_add(1);
        for e in chunk.elements {
            p.elements.insert(e.name.clone(), e);
        }
        p.owners.extend(chunk.owners);
        p.handover.alarms.extend(chunk.handover.alarms);
        p.handover.statuses.extend(chunk.handover.statuses);
        if !chunk.last {
            return Ok(None);
        }
        let Some(p) = self.current.take() else {
            return Ok(None);
        };
        if p.id < held.id {
            return Ok(None);
        }
        let owners = p
            .owners
            .into_iter()
            .filter(|(name, _)| p.elements.contains_key(name))
            .collect();
        Ok(Some((
            Assignment {
                id: p.id,
                elements: p.elements.into_values().collect(),
                owners,
                credentials: p.credentials,
            },
            p.handover,
        )))
    }
}

impl Chunk {
    /// The empty chunk after this one, of the same assignment.
    fn following(&self) -> Chunk {
        Chunk {
            from: self.from,
            id: self.id,
            index: self.index.saturating_add(1),
            last: false,
            elements: Vec::new(),
            owners: Vec::new(),
            handover: Handover::default(),
            credentials: None,
        }
    }
}

/// Cuts `a` into chunks of at most about `max_bytes` of JSON each (one element always fits).
pub(crate) fn chunks(
    from: ServerId,
    a: &Assignment,
    mut handover: Handover,
    max_bytes: usize,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut cur = Chunk {
        from,
        id: a.id,
        index: 0,
        last: false,
        elements: Vec::new(),
        owners: Vec::new(),
        handover: Handover::default(),
        credentials: a.credentials.clone(),
    };
    let mut size = 0usize;
    for e in &a.elements {
        // Name, address and credential dominate; 96 bytes cover the keys and the owner.
        let cost = e.name.len() * 2 + e.address.len() + e.credential.len() + 96;
        if size > 0 && size.saturating_add(cost) > max_bytes {
            let next = cur.following();
            out.push(std::mem::replace(&mut cur, next));
            size = 0;
        }
        size = size.saturating_add(cost);
        cur.elements.push(e.clone());
        if let Some(&to) = a.owners.get(&e.name) {
            cur.owners.push((e.name.clone(), to));
        }
    }
    // The hand-over rides on the last chunk, spread over extra ones if it is large (a status
    // with its interfaces can weigh a few KiB).
    const PER_CHUNK: usize = 100;
    while handover.alarms.len() + handover.statuses.len() > PER_CHUNK {
        let alarms: Vec<_> = handover
            .alarms
            .drain(..handover.alarms.len().min(PER_CHUNK))
            .collect();
        let room = PER_CHUNK - alarms.len();
        let statuses: Vec<_> = handover
            .statuses
            .drain(..handover.statuses.len().min(room))
            .collect();
        cur.handover = Handover { alarms, statuses };
        let next = cur.following();
        out.push(std::mem::replace(&mut cur, next));
    }
    cur.handover = handover;
    cur.last = true;
    out.push(cur);
    out
}

/// The master's recent deltas, oldest first, each one's `base` the previous one's `id`.
#[derive(Debug, Clone)]
pub(crate) struct History {
    deltas: VecDeque<Delta>,
    /// Bound on the elements the kept deltas touch together.
    max_entries: usize,
    entries: usize,
}

impl History {
    pub(crate) fn new(max_entries: usize) -> History {
        History {
            deltas: VecDeque::new(),
            max_entries,
            entries: 0,
        }
    }

    /// Records the newest delta. One that does not follow the last starts a new history.
    pub(crate) fn record(&mut self, d: Delta) {
        if self.deltas.back().is_some_and(|last| last.id != d.base) {
            self.deltas.clear();
            self.entries = 0;
        }
        self.entries = self.entries.saturating_add(d.len());
        self.deltas.push_back(d);
        while self.entries > self.max_entries && self.deltas.len() > 1 {
            if let Some(old) = self.deltas.pop_front() {
                self.entries = self.entries.saturating_sub(old.len());
            }
        }
    }

    /// The deltas from `base` to the newest, if `base` is still in the history.
    pub(crate) fn since(&self, base: AssignmentId) -> Option<Vec<Delta>> {
        let from = self.deltas.iter().position(|d| d.base == base)?;
        Some(self.deltas.iter().skip(from).cloned().collect())
    }
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
