//! Who is alive: a member is alive while its heartbeats keep arriving within the failure timeout.
//! Also when a majority last answered us (what the lease runs from), and whether we have
//! watched long enough to call a silent member dead.
//!
//! Pure bookkeeping over instants the driver passes in, so it is tested without sleeping.

use super::protocol::{AssignmentId, Heartbeat};
use crate::model::ServerId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    pub(crate) last_heard: Instant,
    pub(crate) applied: AssignmentId,
    pub(crate) known: AssignmentId,
}

#[derive(Debug)]
pub(crate) struct Membership {
    me: ServerId,
    configured: Vec<ServerId>,
    failure_timeout: Duration,
    peers: BTreeMap<ServerId, PeerInfo>,
    /// Per peer, when the newest heartbeat it answered was sent.
    answered: BTreeMap<ServerId, Instant>,
    /// Peers whose port refused a connection since we last heard of them: certainly down.
    refused: BTreeSet<ServerId>,
    /// Since when we have been in contact with a majority (start, or regaining it after a
    /// pause or a cut).
    watching_since: Instant,
}

impl Membership {
    pub(crate) fn new(
        me: ServerId,
        configured: Vec<ServerId>,
        failure_timeout: Duration,
    ) -> Membership {
        Membership {
            me,
            configured,
            failure_timeout,
            peers: BTreeMap::new(),
            answered: BTreeMap::new(),
            refused: BTreeSet::new(),
            watching_since: Instant::now(),
        }
    }

    pub(crate) fn heard(&mut self, hb: &Heartbeat, now: Instant) {
        if hb.from == self.me || !self.configured.contains(&hb.from) {
            return;
        }
        self.peers.insert(
            hb.from,
            PeerInfo {
                last_heard: now,
                applied: hb.applied,
                known: hb.known,
            },
        );
        self.refused.remove(&hb.from);
    }

    /// The peer is certainly gone (nothing listens on its port): dead now, not after the timeout.
    pub(crate) fn forget(&mut self, id: ServerId) {
        self.peers.remove(&id);
        if self.configured.contains(&id) && id != self.me {
            self.refused.insert(id);
        }
    }

    /// `id` answered a heartbeat we sent at `sent`.
    pub(crate) fn answered(&mut self, id: ServerId, sent: Instant) {
        if id == self.me || !self.configured.contains(&id) {
            return;
        }
        let e = self.answered.entry(id).or_insert(sent);
        *e = (*e).max(sent);
    }

    /// Peers whose answers, with ours, make a majority of the configured pool: zero for a pool
    /// of one, one for a pool of two or three.
    pub(crate) fn peers_for_majority(&self) -> usize {
        self.configured.len() / 2
    }

    /// The send instant of the newest heartbeat answers that make a majority with us: the
    /// lease runs from there. None until enough peers answered (or for a pool of one).
    pub(crate) fn lease_base(&self) -> Option<Instant> {
        let k = self.peers_for_majority();
        if k == 0 {
            return None;
        }
        let mut sent: Vec<Instant> = self.answered.values().copied().collect();
        sent.sort_unstable_by(|a, b| b.cmp(a));
        sent.get(k - 1).copied()
    }

    /// Start watching anew: out of contact (paused, cut off), what we knew of the others is
    /// stale.
    pub(crate) fn restart_watch(&mut self, now: Instant) {
        self.watching_since = now;
    }

    /// Whether a silent member might just not have been heard yet: we have watched for less
    /// than the failure timeout and its port did not refuse us. A master must not take the
    /// elements of such a member (it may be polling them).
    pub(crate) fn undecided(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.watching_since) < self.failure_timeout
            && self
                .configured
                .iter()
                .any(|&id| id != self.me && !self.is_alive(id, now) && !self.refused.contains(&id))
    }

    pub(crate) fn is_alive(&self, id: ServerId, now: Instant) -> bool {
        id == self.me
            || self
                .peers
                .get(&id)
                .is_some_and(|p| now.saturating_duration_since(p.last_heard) < self.failure_timeout)
    }

    /// Alive members including this server, in id order.
    pub(crate) fn alive(&self, now: Instant) -> Vec<ServerId> {
        self.configured
            .iter()
            .copied()
            .filter(|&id| self.is_alive(id, now))
            .collect()
    }

    pub(crate) fn info(&self, id: ServerId) -> Option<&PeerInfo> {
        self.peers.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(from: u32) -> Heartbeat {
        Heartbeat {
            from: ServerId(from),
            term: 1,
            applied: AssignmentId::default(),
            known: AssignmentId::default(),
            master: None,
        }
    }

    #[test]
    fn alive_until_failure_timeout_and_strangers_ignored() {
        let ids = vec![ServerId(1), ServerId(2), ServerId(3)];
        let mut m = Membership::new(ServerId(1), ids, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(
            m.alive(t0),
            vec![ServerId(1)],
            "only me before any heartbeat"
        );
        m.heard(&hb(2), t0);
        m.heard(&hb(9), t0);
        assert_eq!(
            m.alive(t0 + Duration::from_millis(999)),
            vec![ServerId(1), ServerId(2)]
        );
        assert_eq!(m.alive(t0 + Duration::from_secs(1)), vec![ServerId(1)]);
        assert!(m.info(ServerId(9)).is_none());
    }

    #[test]
    fn the_lease_runs_from_the_answer_that_completes_a_majority() {
        let ids: Vec<ServerId> = (1..=5).map(ServerId).collect();
        let mut m = Membership::new(ServerId(1), ids, Duration::from_secs(1));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        m.answered(ServerId(2), at(300));
        assert_eq!(m.lease_base(), None, "two of five is no majority");
        m.answered(ServerId(3), at(100));
        m.answered(ServerId(4), at(200));
        // Newest answers: 300, 200, 100; with us, the second makes three of five.
        assert_eq!(m.lease_base(), Some(at(200)));
        m.answered(ServerId(4), at(50));
        assert_eq!(
            m.lease_base(),
            Some(at(200)),
            "an older answer changes nothing"
        );
        m.answered(ServerId(9), at(900));
        assert_eq!(m.lease_base(), Some(at(200)), "strangers do not count");
        let one = Membership::new(ServerId(1), vec![ServerId(1)], Duration::from_secs(1));
        assert_eq!(one.peers_for_majority(), 0);
    }

    #[test]
    fn a_fresh_watcher_cannot_call_the_unheard_dead_until_the_timeout() {
        let ids = vec![ServerId(1), ServerId(2), ServerId(3)];
        let mut m = Membership::new(ServerId(3), ids, Duration::from_secs(1));
        let t0 = Instant::now();
        m.restart_watch(t0);
        m.heard(&hb(2), t0);
        assert!(
            m.undecided(t0 + Duration::from_millis(500)),
            "1 not heard yet"
        );
        assert!(
            !m.undecided(t0 + Duration::from_secs(1)),
            "watched long enough"
        );
        m.forget(ServerId(1));
        assert!(!m.undecided(t0), "1's port refused: it is down");
        m.heard(&hb(1), t0);
        assert!(!m.undecided(t0));
        m.forget(ServerId(1));
        m.heard(&hb(1), t0);
        assert!(
            !m.undecided(t0 + Duration::from_millis(999)),
            "everyone heard"
        );
    }
}
