//! A new master's catch-up: before deciding anything it fetches the newest assignment any live
//! member knows of, so that it never redistributes from its own outdated copy.

use super::Cluster;
use super::protocol::{Assignment, AssignmentId};
use crate::model::ServerId;
use tokio::time::Instant;

impl Cluster {
    /// Newest assignment from any peer that knows a newer one than ours (a new master must
    /// not decide from an outdated inventory). False when a newer one exists but could not be
    /// fetched: then nothing may be decided yet.
    pub(super) async fn catch_up_assignment(&self) -> bool {
        let (mine, candidates) = {
            let st = self.lock();
            let now = Instant::now();
            let mut c: Vec<(AssignmentId, ServerId)> = st
                .membership
                .alive(now)
                .into_iter()
                .filter(|&id| id != self.me)
                .filter_map(|id| st.membership.info(id).map(|i| (i.known, id)))
                .filter(|(k, _)| *k > st.assignment.id)
                .collect();
            c.sort();
            (st.assignment.id, c)
        };
        if let Some(&(_, peer)) = candidates.last() {
            // The whole inventory: allow for a large one, but not for a peer that stopped
            // answering heartbeats meanwhile (paused, cut off): its elements wait on us.
            let fetch = self.transport.get::<Assignment>(
                peer,
                "/peer/v1/assignment",
                self.timings.failure_timeout * 4,
            );
            let gone = async {
                loop {
                    tokio::time::sleep(self.timings.heartbeat).await;
                    if !self.lock().membership.is_alive(peer, Instant::now()) {
                        break;
                    }
                }
            };
            let got = tokio::select! {
                got = fetch => got,
                // Next round asks the newest of those still alive.
                () = gone => {
                    tracing::info!("server {peer} died while sending the newest assignment");
                    return false;
                }
            };
            match got {
                Ok(a) if a.id > mine => {
                    let mut st = self.lock();
                    if a.id > st.assignment.id {
                        st.assignment = a;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("cannot fetch the newest assignment: {e}");
                    return false;
                }
            }
        }
        true
    }
}
