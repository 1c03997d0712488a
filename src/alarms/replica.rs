//! What the pool keeps of the alarms of elements this server does not own: each owner sends
//! its active alarms (id, first seen, count, acknowledgement) to the other members, so that
//! when it dies the element's new owner continues the same alarms instead of raising new ones.
//!
//! An owner sends a full snapshot to a member that has none of its current series (first
//! contact, a restart on either side, a refusal), then only what changed: O(change) bytes per
//! change, not O(alarms). Pure bookkeeping: the caller's `owner_of` checks the sender against
//! the assignment.

use crate::model::{Alarm, ServerId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One owner's alarms: all of them (`base` none), or the changes since `base`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AlarmSync {
    pub(crate) from: ServerId,
    /// Chosen at the sender's start: a restarted sender begins a new series.
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base: Option<u64>,
    /// New or changed alarms (every alarm in a snapshot).
    #[serde(default)]
    pub(crate) alarms: Vec<Alarm>,
    /// `(element, key)` of alarms that ended or left the sender.
    #[serde(default)]
    pub(crate) removed: Vec<(String, String)>,
}

/// What the receiver made of it: `seq` is what it now holds of the sender's series (none:
/// a delta it could not apply, send a snapshot); entries for elements it does not believe the
/// sender owns are refused (its assignment may lag; a snapshot repairs it later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncAnswer {
    pub(crate) seq: Option<u64>,
    pub(crate) accepted: usize,
    pub(crate) refused: usize,
}

/// At most this many alarms are kept per sender, so a flood on one server cannot exhaust the
/// others' memory (a snapshot keeps the oldest first-seen: they carry the history that matters).
pub(crate) const MAX_PER_SENDER: usize = 20_000;

/// Alarms by element, with the server that sent them.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    by_element: HashMap<String, (ServerId, Vec<Alarm>)>,
    /// Per sender: its series and the last seq applied, and how many alarms are kept of it.
    senders: HashMap<ServerId, (u64, u64, usize)>,
}

impl Replica {
    /// Applies a snapshot (replacing everything kept from the sender) or a delta that follows
    /// the last seq applied of the same series; keeps only alarms of elements that `owner_of`
    /// says the sender owns.
    pub(crate) fn accept(
        &mut self,
        mut sync: AlarmSync,
        owner_of: impl Fn(&str) -> Option<ServerId>,
    ) -> SyncAnswer {
        let from = sync.from;
        let mut answer = SyncAnswer::default();
        match sync.base {
            None => {
                self.by_element.retain(|_, (s, _)| *s != from);
                self.senders.insert(from, (sync.epoch, 0, 0));
                if sync.alarms.len() > MAX_PER_SENDER {
                    sync.alarms.sort_by_key(|a| a.first_seen);
                    answer.refused = sync.alarms.len() - MAX_PER_SENDER;
                    sync.alarms.truncate(MAX_PER_SENDER);
                }
            }
            Some(base) => {
                if !self
                    .senders
                    .get(&from)
                    .is_some_and(|&(e, s, _)| e == sync.epoch && s == base)
                {
                    return answer;
                }
                for (element, key) in &sync.removed {
                    self.remove(from, element, key);
                }
            }
        }
        for a in sync.alarms {
            if owner_of(&a.element) != Some(from) || !self.upsert(from, a) {
                answer.refused += 1;
            } else {
                answer.accepted += 1;
            }
        }
        if let Some(s) = self.senders.get_mut(&from) {
            s.1 = sync.seq;
        }
        answer.seq = Some(sync.seq);
        answer
    }

    fn kept_of(&mut self, from: ServerId) -> &mut usize {
        &mut self.senders.entry(from).or_insert((0, 0, 0)).2
    }

    /// False when the sender is at its bound and this is a new alarm.
    fn upsert(&mut self, from: ServerId, a: Alarm) -> bool {
        if let Some((owner, v)) = self.by_element.get_mut(&a.element)
            && *owner != from
        {
            // The element moved to this sender: what another sent of it is stale.
            let (old, stale) = (*owner, v.len());
            v.clear();
            *owner = from;
            let n = self.kept_of(old);
            *n = n.saturating_sub(stale);
        }
        let full = self
            .senders
            .get(&from)
            .is_some_and(|s| s.2 >= MAX_PER_SENDER);
        let entry = self
            .by_element
            .entry(a.element.clone())
            .or_insert_with(|| (from, Vec::new()));
        if let Some(slot) = entry.1.iter_mut().find(|x| x.key == a.key) {
            *slot = a;
            return true;
        }
        if full {
            if entry.1.is_empty() {
                self.by_element.remove(&a.element);
            }
            return false;
        }
        entry.1.push(a);
        *self.kept_of(from) += 1;
        true
    }

    fn remove(&mut self, from: ServerId, element: &str, key: &str) {
        let Some((owner, v)) = self.by_element.get_mut(element) else {
            return;
        };
        if *owner != from {
            return;
        }
        let before = v.len();
        v.retain(|a| a.key != key);
        let gone = before - v.len();
        if v.is_empty() {
            self.by_element.remove(element);
        }
        let n = self.kept_of(from);
        *n = n.saturating_sub(gone);
    }

    fn recount(&mut self) {
        for s in self.senders.values_mut() {
            s.2 = 0;
        }
        for (from, v) in self.by_element.values() {
            self.senders.entry(*from).or_insert((0, 0, 0)).2 += v.len();
        }
    }

    /// The kept alarms of `element`, removed from the replica (its new owner takes them).
    /// The alarms kept of `from` (what a restarted `from` asks back), at most
    /// [`MAX_PER_SENDER`].
    pub(crate) fn of(&self, from: ServerId) -> Vec<Alarm> {
        self.by_element
            .values()
            .filter(|(s, _)| *s == from)
            .flat_map(|(_, v)| v.iter().cloned())
            .take(MAX_PER_SENDER)
            .collect()
    }

    /// Keeps `alarms` of this server itself, as its peers kept them while it restarted, for
    /// [`Replica::take`] when it applies its first assignment; of two copies of one alarm the
    /// one seen last wins.
    pub(crate) fn restore_own(&mut self, me: ServerId, alarms: Vec<Alarm>) {
        for a in alarms {
            // Another owner's copy here is newer news than what was kept of us.
            if self
                .by_element
                .get(&a.element)
                .is_some_and(|(o, _)| *o != me)
            {
                continue;
            }
            let newer = self
                .by_element
                .get(&a.element)
                .and_then(|(_, v)| v.iter().find(|x| x.key == a.key))
                .is_none_or(|x| (a.last_seen, a.acked_at) > (x.last_seen, x.acked_at));
            if newer {
                self.upsert(me, a);
            }
        }
    }

    pub(crate) fn take(&mut self, element: &str) -> Vec<Alarm> {
        let Some((from, v)) = self.by_element.remove(element) else {
            return Vec::new();
        };
        let n = self.kept_of(from);
        *n = n.saturating_sub(v.len());
        v
    }

    /// Forgets what no longer comes from the element's owner (moved, removed): a stale copy
    /// must never come back as an active alarm later.
    pub(crate) fn prune(&mut self, owner_of: impl Fn(&str) -> Option<ServerId>) {
        self.by_element
            .retain(|element, (from, _)| owner_of(element) == Some(*from));
        self.recount();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_element.values().map(|(_, v)| v.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn alarm(id: u64, element: &str, first_seen: i64) -> Alarm {
        Alarm {
            id,
            key: format!("LinkDown:{element}:{id}"),
            kind: "LinkDown".into(),
            element: element.into(),
            instance: Some(id.to_string()),
            severity: Severity::Major,
            text: "down".into(),
            first_seen,
            last_seen: first_seen,
            count: 1,
            acked_by: None,
            acked_at: None,
            server: ServerId(2),
        }
    }

    fn owners(name: &str) -> Option<ServerId> {
        match name {
            "a" | "b" => Some(ServerId(2)),
            "c" => Some(ServerId(3)),
            _ => None,
        }
    }

    fn full(from: u32, seq: u64, alarms: Vec<Alarm>) -> AlarmSync {
        AlarmSync {
            from: ServerId(from),
            epoch: 9,
            seq,
            base: None,
            alarms,
            removed: vec![],
        }
    }

    #[test]
    fn only_the_owner_is_believed_and_a_snapshot_replaces_the_last() {
        let mut r = Replica::default();
        let got = r.accept(
            full(
                2,
                1,
                vec![alarm(1, "a", 10), alarm(2, "b", 10), alarm(3, "c", 10)],
            ),
            owners,
        );
        assert_eq!(
            got,
            SyncAnswer {
                seq: Some(1),
                accepted: 2,
                refused: 1
            }
        );
        // Server 3 cannot speak for server 2's elements.
        r.accept(full(3, 1, vec![alarm(4, "a", 10)]), owners);
        assert_eq!(r.len(), 2);
        // The next snapshot of server 2 no longer has b's alarm: it cleared.
        r.accept(full(2, 2, vec![alarm(1, "a", 10)]), owners);
        assert!(r.take("b").is_empty());
        assert_eq!(r.take("a").iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
        assert!(r.take("a").is_empty(), "taken once");
    }

    #[test]
    fn deltas_apply_in_sequence_only() {
        let mut r = Replica::default();
        r.accept(
            full(2, 1, vec![alarm(1, "a", 10), alarm(2, "b", 10)]),
            owners,
        );
        let mut acked = alarm(1, "a", 10);
        acked.acked_by = Some("alice".into());
        let delta = |base, seq, alarms, removed| AlarmSync {
            base: Some(base),
            removed,
            ..full(2, seq, alarms)
        };
        let got = r.accept(
            delta(1, 2, vec![acked], vec![("b".into(), "LinkDown:b:2".into())]),
            owners,
        );
        assert_eq!((got.seq, got.accepted), (Some(2), 1));
        assert_eq!(r.len(), 1);
        // A delta that does not follow what is held (one was lost): a snapshot is needed.
        let got = r.accept(delta(5, 6, vec![alarm(7, "a", 10)], vec![]), owners);
        assert_eq!(got.seq, None);
        // Another series (the sender restarted) needs a snapshot too.
        let got = r.accept(
            AlarmSync {
                epoch: 10,
                ..delta(2, 3, vec![], vec![])
            },
            owners,
        );
        assert_eq!(got.seq, None);
        let kept = r.take("a");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].acked_by.as_deref(), Some("alice"));
    }

    #[test]
    fn prune_forgets_moved_and_removed_elements_and_size_is_bounded() {
        let mut r = Replica::default();
        r.accept(
            full(2, 1, vec![alarm(1, "a", 10), alarm(2, "b", 10)]),
            owners,
        );
        r.prune(|n| (n == "a").then_some(ServerId(2)));
        assert_eq!(r.len(), 1);
        let all_2 = |_: &str| Some(ServerId(2));
        let many: Vec<Alarm> = (0..MAX_PER_SENDER as u64 + 5)
            .map(|i| alarm(i, &format!("e{}", i % 5000), i as i64))
            .collect();
        let got = r.accept(full(2, 2, many), all_2);
        assert_eq!((got.accepted, got.refused), (MAX_PER_SENDER, 5));
        assert_eq!(r.len(), MAX_PER_SENDER);
        // A delta cannot grow past the bound either.
        let got = r.accept(
            AlarmSync {
                base: Some(2),
                ..full(2, 3, vec![alarm(MAX_PER_SENDER as u64 + 9, "b", 1)])
            },
            all_2,
        );
        assert_eq!((got.accepted, got.refused), (0, 1));
    }

    #[test]
    fn a_restarted_owner_gets_back_what_was_kept_of_it_newest_copy_first() {
        let mut r = Replica::default();
        r.accept(
            full(2, 1, vec![alarm(1, "a", 10), alarm(2, "b", 20)]),
            owners,
        );
        r.accept(full(3, 1, vec![alarm(3, "c", 30)]), owners);
        let mut mine = r.of(ServerId(2));
        mine.sort_by_key(|a| a.id);
        assert_eq!(mine.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 2]);

        // Server 2, restarted, restores two peers' copies: the one seen last wins, and an
        // element another owner's copy holds here is left to it.
        let mut back = Replica::default();
        back.accept(full(3, 1, vec![alarm(3, "c", 30)]), owners);
        let mut older = alarm(1, "a", 10);
        older.count = 1;
        let mut newer = alarm(1, "a", 10);
        newer.last_seen = 99;
        newer.count = 7;
        back.restore_own(ServerId(2), vec![older, newer.clone(), alarm(9, "c", 5)]);
        back.restore_own(ServerId(2), vec![alarm(1, "a", 10)]);
        assert_eq!(back.take("a"), vec![newer]);
        assert_eq!(back.take("c").iter().map(|a| a.id).collect::<Vec<_>>(), [3]);
    }
}
