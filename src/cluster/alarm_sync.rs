//! Sends this server's active alarms to the other members (`POST /peer/v1/alarms`) soon after
//! each change, so an element's next owner can continue them if this server dies: same id,
//! first-seen, count and acknowledgement, and no second `alarm.raised`.
//!
//! A member that holds this server's current series gets only the changes (new, cleared,
//! acknowledged, moved alarms); any other (first contact, a restart, a lost or refused message)
//! gets a snapshot. Every [`SNAPSHOT_EVERY`] all get a snapshot, which also carries the counts
//! and last-seen times that repeats change without a message.

use super::Cluster;
use crate::alarms::replica::{AlarmSync, MAX_PER_SENDER, SyncAnswer};
use crate::model::{Alarm, ServerId};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Changes arriving within this gap go out in one message.
const BATCH: Duration = Duration::from_millis(100);
/// A message (empty if nothing changed) at least this often: a member that restarted faster
/// than the failure detection answers that it holds no series and gets a snapshot.
const KEEPALIVE: Duration = Duration::from_secs(5);
const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);
/// Rounds in a row for members that missed or refused one, before waiting for a change or
/// the keepalive again.
const RETRIES: u32 = 8;

pub(super) async fn run(c: Weak<Cluster>) {
    let epoch = rand::random::<u64>() | 1;
    let mut seq: u64 = 0;
    // The seq each member holds of this series.
    let mut held: HashMap<ServerId, u64> = HashMap::new();
    let mut last_snapshot = Instant::now();
    let mut retries = 0;
    let mut last_sent = Instant::now();
    loop {
        let Some(cluster) = c.upgrade() else { return };
        // Every heartbeat at least, so a member that just came up gets its snapshot at once
        // rather than at the next change (it may have to take elements over any moment).
        let woke_by_change =
            tokio::time::timeout(cluster.timings.heartbeat, cluster.alarms.changed())
                .await
                .is_ok();
        if woke_by_change {
            tokio::time::sleep(BATCH).await;
        }
        // Our first snapshot replaces what the others kept of us: not before we asked for it.
        if !cluster.recovered() {
            continue;
        }
        let peers: Vec<ServerId> = cluster
            .alive_members()
            .into_iter()
            .filter(|&id| id != cluster.me)
            .collect();
        held.retain(|id, _| peers.contains(id));
        if last_snapshot.elapsed() >= SNAPSHOT_EVERY {
            held.clear();
            last_snapshot = Instant::now();
        }
        let in_step = peers.iter().all(|p| held.get(p) == Some(&seq));
        if !woke_by_change && retries == 0 && in_step && last_sent.elapsed() < KEEPALIVE {
            continue;
        }
        last_sent = Instant::now();
        let base = seq;
        seq += 1;
        let (changed, removed) = cluster.alarms.drain_changes();
        let needs_snapshot = peers.iter().any(|p| held.get(p) != Some(&base));
        // Taken after the changes were drained, so it has them all.
        let snapshot = needs_snapshot.then(|| owned_snapshot(&cluster));
        let delta = Arc::new(AlarmSync {
            from: cluster.me,
            epoch,
            seq,
            base: Some(base),
            alarms: changed,
            removed,
        });
        let snapshot = snapshot.map(|alarms| {
            Arc::new(AlarmSync {
                from: cluster.me,
                epoch,
                seq,
                base: None,
                alarms,
                removed: Vec::new(),
            })
        });
        let mut set = JoinSet::new();
        for to in peers {
            let msg = match (&snapshot, held.get(&to) == Some(&base)) {
                (Some(s), false) => s.clone(),
                _ => delta.clone(),
            };
            let c = cluster.clone();
            set.spawn(async move {
                let r: Result<SyncAnswer, _> = c
                    .transport
                    .post(to, "/peer/v1/alarms", &*msg, c.timings.failure_timeout)
                    .await;
                (to, r)
            });
        }
        let mut behind = false;
        while let Some(done) = set.join_next().await {
            let Ok((to, r)) = done else { continue };
            match r {
                Ok(a) if a.seq == Some(seq) && a.refused == 0 => {
                    held.insert(to, seq);
                }
                Ok(a) => {
                    tracing::debug!(
                        "server {to} kept {} of our alarms, refused {}, holds {:?}",
                        a.accepted,
                        a.refused,
                        a.seq
                    );
                    held.remove(&to);
                    behind = true;
                }
                Err(e) => {
                    tracing::debug!("alarm copy to server {to}: {e}");
                    held.remove(&to);
                    behind = true;
                }
            }
        }
        retries = if behind && retries < RETRIES {
            retries + 1
        } else {
            0
        };
    }
}

/// The alarms of the elements this server polls (alarms left from before a fence are not its
/// to vouch for), at most what a receiver keeps.
fn owned_snapshot(c: &Cluster) -> Vec<Alarm> {
    let mut alarms = c.alarms.snapshot();
    alarms.retain(|a| c.poller.owns(&a.element));
    if alarms.len() > MAX_PER_SENDER {
        alarms.sort_by_key(|a| a.first_seen);
        alarms.truncate(MAX_PER_SENDER);
    }
    alarms
}

impl Cluster {
    /// A member's snapshot or changes of its alarms: kept for the elements it owns by the
    /// newest assignment known here, refused for any other.
    pub(crate) fn accept_alarms(&self, sync: AlarmSync) -> SyncAnswer {
        let st = self.lock();
        self.alarms
            .accept_sync(sync, |e| st.assignment.owners.get(e).copied())
    }
}
