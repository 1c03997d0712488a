//! Who is alive: a member is alive while its heartbeats keep arriving within the failure timeout.
//!
//! Pure bookkeeping over instants the driver passes in, so it is tested without sleeping.

use super::protocol::{AssignmentId, Heartbeat};
use crate::model::ServerId;
use std::collections::BTreeMap;
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
    }

    /// The peer is certainly gone (nothing listens on its port): dead now, not after the timeout.
    pub(crate) fn forget(&mut self, id: ServerId) {
        self.peers.remove(&id);
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
}
