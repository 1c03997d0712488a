//! What the pool keeps of the alarms of elements this server does not own: each owner sends
//! its active alarms (id, first seen, count, acknowledgement) to the other members, so that
//! when it dies the element's new owner continues the same alarms instead of raising new ones.
//!
//! Pure bookkeeping: the sender and the assignment are checked by the caller's `owner_of`.

use crate::model::{Alarm, ServerId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One owner's alarms, all of them: a snapshot replaces what was kept from that sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AlarmSync {
    pub(crate) from: ServerId,
    pub(crate) alarms: Vec<Alarm>,
}

/// What the receiver kept of a snapshot: entries for elements it does not believe the sender
/// owns are refused (the receiver's assignment may lag; the sender sends again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SyncAnswer {
    pub(crate) accepted: usize,
    pub(crate) refused: usize,
}

/// At most this many alarms are kept per sender (the oldest first-seen win: they carry the
/// history that matters), so a flood on one server cannot exhaust the others' memory.
pub(crate) const MAX_PER_SENDER: usize = 20_000;

/// Alarms by element, with the server that sent them.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    by_element: HashMap<String, (ServerId, Vec<Alarm>)>,
}

impl Replica {
    /// Replaces everything kept from `sync.from` by this snapshot, keeping only the alarms of
    /// elements that `owner_of` says the sender owns.
    pub(crate) fn accept(
        &mut self,
        mut sync: AlarmSync,
        owner_of: impl Fn(&str) -> Option<ServerId>,
    ) -> SyncAnswer {
        let from = sync.from;
        self.by_element.retain(|_, (s, _)| *s != from);
        let mut answer = SyncAnswer::default();
        if sync.alarms.len() > MAX_PER_SENDER {
            sync.alarms.sort_by_key(|a| a.first_seen);
            answer.refused = sync.alarms.len() - MAX_PER_SENDER;
            sync.alarms.truncate(MAX_PER_SENDER);
        }
        for a in sync.alarms {
            if owner_of(&a.element) != Some(from) {
                answer.refused += 1;
                continue;
            }
            answer.accepted += 1;
            self.by_element
                .entry(a.element.clone())
                .or_insert_with(|| (from, Vec::new()))
                .1
                .push(a);
        }
        answer
    }

    /// The kept alarms of `element`, removed from the replica (its new owner takes them).
    pub(crate) fn take(&mut self, element: &str) -> Vec<Alarm> {
        self.by_element
            .remove(element)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    /// Forgets what no longer comes from the element's owner (moved, removed): a stale copy
    /// must never come back as an active alarm later.
    pub(crate) fn prune(&mut self, owner_of: impl Fn(&str) -> Option<ServerId>) {
        self.by_element
            .retain(|element, (from, _)| owner_of(element) == Some(*from));
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

    #[test]
    fn only_the_owner_is_believed_and_a_snapshot_replaces_the_last() {
        let mut r = Replica::default();
        let got = r.accept(
            AlarmSync {
                from: ServerId(2),
                alarms: vec![alarm(1, "a", 10), alarm(2, "b", 10), alarm(3, "c", 10)],
            },
            owners,
        );
        assert_eq!(
            got,
            SyncAnswer {
                accepted: 2,
                refused: 1
            }
        );
        // Server 3 cannot speak for server 2's elements.
        r.accept(
            AlarmSync {
                from: ServerId(3),
                alarms: vec![alarm(4, "a", 10)],
            },
            owners,
        );
        assert_eq!(r.len(), 2);
        // The next snapshot of server 2 no longer has b's alarm: it cleared.
        r.accept(
            AlarmSync {
                from: ServerId(2),
                alarms: vec![alarm(1, "a", 10)],
            },
            owners,
        );
        assert!(r.take("b").is_empty());
        assert_eq!(r.take("a").iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
        assert!(r.take("a").is_empty(), "taken once");
    }

    #[test]
    fn prune_forgets_moved_and_removed_elements_and_size_is_bounded() {
        let mut r = Replica::default();
        r.accept(
            AlarmSync {
                from: ServerId(2),
                alarms: vec![alarm(1, "a", 10), alarm(2, "b", 10)],
            },
            owners,
        );
        r.prune(|n| (n == "a").then_some(ServerId(2)));
        assert_eq!(r.len(), 1);
        let many: Vec<Alarm> = (0..MAX_PER_SENDER as u64 + 5)
            .map(|i| alarm(i, "a", i as i64))
            .collect();
        let got = r.accept(
            AlarmSync {
                from: ServerId(2),
                alarms: many,
            },
            owners,
        );
        assert_eq!((got.accepted, got.refused), (MAX_PER_SENDER, 5));
        assert_eq!(r.len(), MAX_PER_SENDER);
    }
}
