//! A member that restarts faster than the pool notices keeps its elements, but its alarm table
//! lived in memory and is empty: polling them it would raise every standing alarm again (a
//! second `alarm.raised`, a new webhook, a new id), and its first copy to the others, empty,
//! would replace what they kept of it. So before it applies its first assignment it asks the
//! other members for the alarms they kept of it, continues those like a dead owner's
//! (`AlarmTable::inherit`: unconfirmed until an answered poll), and only then sends copies.

use super::Cluster;
use crate::alarms::replica::MAX_PER_SENDER;
use crate::model::{Alarm, ServerId};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinSet;

impl Cluster {
    /// Whether this server asked its alarms back since it started (its own copies may go).
    pub(super) fn recovered(&self) -> bool {
        self.recovered.load(Ordering::Acquire)
    }

    /// Once per start: the alarms the other members kept of this server, into its own copy.
    /// A member that does not answer within half the failure timeout is not waited for.
    pub(super) async fn recover_own_alarms(&self) {
        if self.recovered() {
            return;
        }
        let timeout = (self.timings.failure_timeout / 2).max(Duration::from_millis(100));
        let mut asks = JoinSet::new();
        for m in self.members.iter().filter(|m| m.id != self.me.0) {
            let (to, transport) = (ServerId(m.id), self.transport.clone());
            asks.spawn(async move {
                let r: Result<Vec<Alarm>, _> =
                    transport.get(to, "/peer/v1/alarms/kept", timeout).await;
                (to, r)
            });
        }
        let (mut kept, mut answered) = (Vec::new(), 0);
        while let Some(done) = asks.join_next().await {
            let Ok((to, r)) = done else { continue };
            match r {
                Ok(mut alarms) => {
                    answered += 1;
                    // Nothing from a peer is trusted for its size.
                    alarms.truncate(MAX_PER_SENDER);
                    alarms.retain(|a| a.server == self.me);
                    kept.extend(alarms);
                }
                Err(e) => tracing::debug!("server {to} kept no alarms of ours for us: {e}"),
            }
        }
        if !kept.is_empty() {
            tracing::info!(
                "{} alarm(s) of this server kept by {answered} member(s) while it was away",
                kept.len()
            );
        }
        self.alarms.restore_own(kept);
        self.recovered.store(true, Ordering::Release);
    }
}
