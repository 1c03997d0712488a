//! Sends this server's active alarms to the other members (`POST /peer/v1/alarms`) soon after
//! each change, so an element's next owner can continue them if this server dies: same id,
//! first-seen, count and acknowledgement, and no second `alarm.raised`.
//!
//! Whole snapshots, not deltas: a receiver that restarted or refused part of one (its
//! assignment lagged) is repaired by the next one without any bookkeeping. They are sent only
//! after a change, and again every [`RESEND`] for members that came (back) later.

use super::Cluster;
use crate::alarms::replica::{AlarmSync, MAX_PER_SENDER, SyncAnswer};
use crate::model::ServerId;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Changes arriving within this gap go out in one snapshot.
const BATCH: Duration = Duration::from_millis(100);
/// A snapshot again even without a change (members that restarted have none).
const RESEND: Duration = Duration::from_secs(5);

/// Snapshots a refusing or unreachable member gets at heartbeat pace before waiting again.
const RETRIES: u32 = 8;

pub(super) async fn run(c: std::sync::Weak<Cluster>) {
    let mut retries = 0;
    loop {
        let Some(cluster) = c.upgrade() else { return };
        if retries > 0 {
            tokio::time::sleep(cluster.timings.heartbeat).await;
        } else {
            let _ = tokio::time::timeout(RESEND, cluster.alarms.changed()).await;
        }
        tokio::time::sleep(BATCH).await;
        retries = match send_once(&cluster).await {
            true if retries < RETRIES => retries + 1,
            _ => 0,
        };
    }
}

/// One snapshot to every live peer; true when one of them must get it again soon.
async fn send_once(c: &Arc<Cluster>) -> bool {
    let peers: Vec<ServerId> = c
        .alive_members()
        .into_iter()
        .filter(|&id| id != c.me)
        .collect();
    if peers.is_empty() {
        return false;
    }
    let mut sync = c.alarms.snapshot();
    // Only what this server polls: alarms left from before a fence are not its to vouch for.
    sync.alarms.retain(|a| c.poller.owns(&a.element));
    if sync.alarms.len() > MAX_PER_SENDER {
        // The receivers keep only this many; send what they keep.
        sync.alarms.sort_by_key(|a| a.first_seen);
        sync.alarms.truncate(MAX_PER_SENDER);
    }
    let sync = Arc::new(sync);
    let mut set = JoinSet::new();
    for to in peers {
        let c = c.clone();
        let sync = sync.clone();
        set.spawn(async move {
            let r: Result<SyncAnswer, _> = c
                .transport
                .post(to, "/peer/v1/alarms", &*sync, c.timings.failure_timeout)
                .await;
            match r {
                Ok(a) if a.refused == 0 => false,
                Ok(a) => {
                    tracing::debug!(
                        "server {to} kept {} of our alarms, refused {}",
                        a.accepted,
                        a.refused
                    );
                    true
                }
                Err(e) => {
                    tracing::debug!("alarm copy to server {to}: {e}");
                    true
                }
            }
        });
    }
    let mut again = false;
    while let Some(r) = set.join_next().await {
        again |= r.unwrap_or(true);
    }
    again
}

impl Cluster {
    /// A member's snapshot of its alarms: kept for the elements it owns by the newest
    /// assignment known here, refused for any other.
    pub(crate) fn accept_alarms(&self, sync: AlarmSync) -> SyncAnswer {
        let st = self.lock();
        self.alarms
            .accept_sync(sync, |e| st.assignment.owners.get(e).copied())
    }
}
