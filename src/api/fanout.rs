//! Asks every live member the same question at once, with one deadline for all, so a
//! pool-wide answer never hangs on a slow or dead server; it says who is missing instead.

use super::Shared;
use crate::cluster::transport::PeerError;
use crate::model::ServerId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tokio::task::JoinSet;

/// Fan-out answers must come within this, whatever the number of members.
pub(crate) const DEADLINE: Duration = Duration::from_millis(1500);

pub(crate) struct Gathered<R> {
    pub(crate) answers: Vec<(ServerId, R)>,
    /// Members that did not answer in time (or are dead, or failed).
    pub(crate) missing: Vec<ServerId>,
}

/// GETs `path` from every other configured member believed alive; dead ones are missing at
/// once, without waiting.
pub(crate) async fn get<R: DeserializeOwned + Send + 'static>(
    s: &Shared,
    path: &str,
) -> Gathered<R> {
    run(s, move |t, id| {
        let path = path.to_owned();
        async move { t.get::<R>(id, &path, DEADLINE).await }
    })
    .await
}

/// POSTs `body` to `path` on every other live member.
pub(crate) async fn post<B, R>(s: &Shared, path: &str, body: &B) -> Gathered<R>
where
    B: Serialize + Clone + Send + Sync + 'static,
    R: DeserializeOwned + Send + 'static,
{
    let body = body.clone();
    run(s, move |t, id| {
        let path = path.to_owned();
        let body = body.clone();
        async move { t.post::<B, R>(id, &path, &body, DEADLINE).await }
    })
    .await
}

async fn run<R, F, Fut>(s: &Shared, call: F) -> Gathered<R>
where
    R: Send + 'static,
    F: Fn(std::sync::Arc<crate::cluster::transport::Transport>, ServerId) -> Fut,
    Fut: std::future::Future<Output = Result<R, PeerError>> + Send + 'static,
{
    let alive = s.cluster.alive_members();
    let mut missing: Vec<ServerId> = Vec::new();
    let mut set = JoinSet::new();
    for id in s.cluster.member_ids() {
        if id == s.id {
            continue;
        }
        if !alive.contains(&id) {
            missing.push(id);
            continue;
        }
        let fut = call(s.cluster.transport.clone(), id);
        set.spawn(async move { (id, tokio::time::timeout(DEADLINE, fut).await) });
    }
    let mut answers = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((id, Ok(Ok(r)))) => answers.push((id, r)),
            // A 4xx: the member was there, and its answer was no.
            Ok((_, Ok(Err(PeerError::Refused(_, code, _))))) if code < 500 => {}
            Ok((id, Ok(Err(e)))) => {
                tracing::debug!("fan-out to server {id}: {e}");
                missing.push(id);
            }
            Ok((id, Err(_))) => missing.push(id),
            Err(e) => tracing::warn!("fan-out task failed: {e}"),
        }
    }
    missing.sort();
    Gathered { answers, missing }
}
