//! Peer endpoints under `/peer/v1`: election, heartbeats, assignments and hand-over.
//! Every request must carry the pool secret; with mutual TLS (`[pool] ca`) also a pool
//! certificate, whose member id is the request's sender. What a request claims is bound to
//! that sender by `cluster::authority`; refusals are counted.

use super::Shared;
use super::client::{
    AlarmParams, AlarmsAnswer, ElementsAnswer, EventParams, EventsAnswer, bad_query,
};
use super::error::ApiError;
use super::local;
use super::peered::AckRequest;
use crate::alarms::replica::{AlarmSync, SyncAnswer};
use crate::cluster::ClusterError;
use crate::cluster::authority::Reason;
use crate::cluster::delta::{Ack, Chunk, Push};
use crate::cluster::inventory::{Accepted, Forwarded};
use crate::cluster::protocol::{Assignment, ElectionEnvelope, Fault, Heartbeat, Release, Released};
use crate::cluster::transport::FROM_HEADER;
use crate::model::ServerId;
use crate::model::{Alarm, ElementView};
use crate::traps::{BatchResult, TrapBatch};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Extension, MatchedPath, Path, Query, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

pub(crate) fn router(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/heartbeat", post(heartbeat))
        .route("/election", post(election))
        .route("/release", post(release))
        .route("/assignment", post(assignment).get(current_assignment))
        .route("/assignment/chunk", post(assignment_chunk))
        .route("/fault", post(set_fault).get(get_fault))
        .route("/inventory", post(inventory))
        .route("/local/elements", get(local_elements))
        .route("/local/elements/{name}", get(local_element))
        .route("/local/alarms", get(local_alarms))
        .route("/local/ack", post(local_ack))
        .route("/local/events", get(local_events))
        .route("/traps", post(traps))
        // A snapshot of up to 20,000 alarms is several megabytes of JSON.
        .route(
            "/alarms",
            post(alarms).layer(axum::extract::DefaultBodyLimit::max(ALARM_SYNC_LIMIT)),
        )
        .route("/alarms/kept", get(kept_alarms))
        .fallback(|| async { ApiError::NotFound("no such peer endpoint".into()) })
        .layer(middleware::from_fn_with_state(state, require_secret))
}

/// The `endpoint` label of a peer request: its route template below `/peer/v1`
/// (`local/elements/{name}`), never the request path, whose parameters (element names,
/// ids) would make one series per value. Requests that match no route share one value.
pub(crate) fn endpoint_label(matched: Option<&MatchedPath>) -> &str {
    matched
        .map(|m| m.as_str())
        .map(|p| p.strip_prefix("/peer/v1").unwrap_or(p))
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or("unmatched")
}

/// The authenticated sender of a peer request, set by [`require_secret`]: the member id of the
/// client certificate with mutual TLS, else the `x-emspool-from` header behind the secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sender(pub(crate) Option<ServerId>);

async fn require_secret(State(s): State<Shared>, mut req: Request, next: Next) -> Response {
    let secret = s.cluster.secret();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = !secret.is_empty()
        && given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(secret.expose().as_bytes())));
    if !ok {
        s.metrics.auth_failures.with_label_values(&["peer"]).inc();
        // The connection counts against the members' own cap (server::limits): one that is
        // not a member's must not keep its place there.
        let mut resp = ApiError::Unauthorized.into_response();
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return resp;
    }
    // A partition injected by a test drops traffic from the blocked side too.
    let from = req
        .headers()
        .get(FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .map(ServerId);
    let sender = if s.cluster.authority.mutual_tls {
        let cert = req
            .extensions()
            .get::<ConnectInfo<crate::tls::Remote>>()
            .and_then(|c| c.0.member);
        match (cert, from) {
            (None, _) => {
                let e = s.cluster.authority.refuse(
                    None,
                    Reason::NoCertificate,
                    "a peer request without a pool certificate".into(),
                );
                return cluster_error(e).into_response();
            }
            (Some(c), Some(h)) if c != h => {
                let e = s.cluster.authority.refuse(
                    Some(c),
                    Reason::Impersonation,
                    format!("certificate of {c} claims to be {h}"),
                );
                return cluster_error(e).into_response();
            }
            (Some(c), _) => Some(c),
        }
    } else {
        from
    };
    if let Some(from) = sender
        && s.cluster.transport.is_blocked(from)
    {
        return ApiError::Unavailable(format!("server {from} is cut off (fault injection)"))
            .into_response();
    }
    req.extensions_mut().insert(Sender(sender));
    let endpoint = endpoint_label(req.extensions().get::<MatchedPath>());
    s.metrics.peer_requests.with_label_values(&[endpoint]).inc();
    next.run(req).await
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

/// A change a member received for the master; answered once persisted here, with the
/// `applied` version when it was distributed within [`super::inventory::SETTLE`].
async fn inventory(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
    c: Result<Json<Forwarded>, JsonRejection>,
) -> Result<Json<Accepted>, ApiError> {
    let f = body(c)?;
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    s.cluster
        .authorize_inventory(from, &f.change)
        .map_err(cluster_error)?;
    s.cluster
        .change_inventory(f.change, f.replay, super::inventory::SETTLE)
        .await
        .map(Json)
        .map_err(cluster_error)
}

pub(crate) fn cluster_error(e: ClusterError) -> ApiError {
    match e {
        ClusterError::StaleTerm { .. } => ApiError::Conflict(e.to_string()),
        // The disk or the database is failing (full, read-only...): a retry may succeed, and
        // nothing was acknowledged.
        ClusterError::Store(m) => ApiError::Unavailable(format!("storage: {m}")),
        ClusterError::NotMaster => ApiError::Unavailable(e.to_string()),
        ClusterError::Exists(_) => ApiError::Conflict(e.to_string()),
        ClusterError::NoSuchElement(_) | ClusterError::NoSuchCredential(_) => {
            ApiError::NotFound(e.to_string())
        }
        ClusterError::CredentialInUse { .. } => ApiError::Conflict(e.to_string()),
        ClusterError::Invalid(m) => ApiError::BadRequest(m),
        // A member whose base differs: the master answers with a snapshot.
        ClusterError::AssignmentRefused(_) => ApiError::Conflict(e.to_string()),
        ClusterError::Tls(m) => ApiError::Internal(m),
        ClusterError::Refused {
            reason: Reason::NoCertificate,
            ..
        } => ApiError::Unauthorized,
        ClusterError::Refused {
            reason: Reason::Invalid,
            ..
        } => ApiError::BadRequest(e.to_string()),
        ClusterError::Refused { .. } => ApiError::Forbidden(e.to_string()),
    }
}

async fn heartbeat(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
    hb: Result<Json<Heartbeat>, JsonRejection>,
) -> Result<Json<Heartbeat>, ApiError> {
    let hb = body(hb)?;
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    s.cluster
        .authorize_heartbeat(from, &hb)
        .map_err(cluster_error)?;
    Ok(Json(s.cluster.on_heartbeat(hb)))
}

async fn election(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
    env: Result<Json<ElectionEnvelope>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let env = body(env)?;
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    s.cluster
        .authorize_election(from, env.from, &env.msg)
        .map_err(cluster_error)?;
    s.cluster.on_election(from, env.msg);
    Ok(Json(serde_json::json!({})))
}

/// Only the master of the current term may take elements away (`cluster::authority`).
async fn release(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
    r: Result<Json<Release>, JsonRejection>,
) -> Result<Json<Released>, ApiError> {
    let r = body(r)?;
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    s.cluster
        .authorize_release(from, &r)
        .await
        .map_err(cluster_error)?;
    s.cluster.release(r).await.map(Json).map_err(cluster_error)
}

/// Only the master of the current term may assign (`cluster::authority`).
async fn assignment(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
    p: Result<Json<Push>, JsonRejection>,
) -> Result<Json<Ack>, ApiError> {
    let p = body(p)?;
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    s.cluster
        .authorize_push(from, &p)
        .await
        .map_err(cluster_error)?;
    s.cluster
        .apply_push(p)
        .await
        .map(Json)
        .map_err(cluster_error)
}

/// Only the master of the current term may assign, in whole as in deltas.
async fn assignment_chunk(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
    c: Result<Json<Chunk>, JsonRejection>,
) -> Result<Json<Ack>, ApiError> {
    let c = body(c)?;
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    s.cluster
        .authorize_chunk(from, &c)
        .await
        .map_err(cluster_error)?;
    s.cluster
        .apply_chunk(c)
        .await
        .map(Json)
        .map_err(cluster_error)
}

async fn current_assignment(State(s): State<Shared>) -> Json<Assignment> {
    Json(s.cluster.assignment())
}

/// Traps a peer received for elements this server owns (batched by the receiver).
async fn traps(
    State(s): State<Shared>,
    b: Result<Json<TrapBatch>, JsonRejection>,
) -> Result<Json<BatchResult>, ApiError> {
    Ok(Json(s.traps.accept_batch(body(b)?)))
}

const ALARM_SYNC_LIMIT: usize = 32 << 20;

/// Another member's active alarms, kept here in case it dies (see `cluster::alarm_sync`).
async fn alarms(
    State(s): State<Shared>,
    headers: axum::http::HeaderMap,
    b: Result<Json<AlarmSync>, JsonRejection>,
) -> Result<Json<SyncAnswer>, ApiError> {
    let sync = body(b)?;
    let said = headers
        .get(FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    if said != Some(sync.from.0) {
        return Err(ApiError::BadRequest(
            "the snapshot's sender differs from the request's".into(),
        ));
    }
    Ok(Json(s.cluster.accept_alarms(sync)))
}

/// The alarms kept here of the asking member: what it held before it restarted.
async fn kept_alarms(
    State(s): State<Shared>,
    Extension(sender): Extension<Sender>,
) -> Result<Json<Vec<crate::model::Alarm>>, ApiError> {
    let from = s
        .cluster
        .authorize_sender(sender.0)
        .map_err(cluster_error)?;
    Ok(Json(s.alarms.kept_of(from)))
}

async fn set_fault(
    State(s): State<Shared>,
    f: Result<Json<Fault>, JsonRejection>,
) -> Result<Json<Fault>, ApiError> {
    if !s.cluster.fault_injection() {
        return Err(ApiError::NotFound("fault injection is disabled".into()));
    }
    let f = body(f)?;
    tracing::warn!("fault injection: cut off from {:?}", f.blocked);
    s.cluster.transport.set_blocked(&f.blocked);
    Ok(Json(Fault {
        blocked: s.cluster.transport.blocked(),
    }))
}

async fn get_fault(State(s): State<Shared>) -> Json<Fault> {
    Json(Fault {
        blocked: s.cluster.transport.blocked(),
    })
}

// The federated service: this server's own data, for the peered answers of the others.

async fn local_elements(State(s): State<Shared>) -> Json<ElementsAnswer> {
    Json(ElementsAnswer {
        elements: local::elements(&s),
        partial: false,
        missing: vec![],
    })
}

async fn local_element(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ElementView>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    local::element(&s, &name)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("server {} does not poll {name:?}", s.id)))
}

async fn local_alarms(
    State(s): State<Shared>,
    params: Result<Query<AlarmParams>, QueryRejection>,
) -> Result<Json<AlarmsAnswer>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let (alarms, total) = local::alarms(&s, &p.filter()?, p.limit());
    Ok(Json(AlarmsAnswer {
        alarms,
        total,
        partial: false,
        missing: vec![],
    }))
}

async fn local_ack(
    State(s): State<Shared>,
    req: Result<Json<AckRequest>, JsonRejection>,
) -> Result<Json<Alarm>, ApiError> {
    let req = body(req)?;
    local::ack(&s, req.id, &req.by).map(Json)
}

async fn local_events(
    State(s): State<Shared>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<EventsAnswer>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let page = local::events(&s, p.query()?).await?;
    Ok(Json(EventsAnswer {
        events: page.events,
        next: page.next.map(|c| c.to_string()),
        partial: false,
        missing: vec![],
        from_stream: vec![],
    }))
}

#[cfg(test)]
mod tests {
    use super::endpoint_label;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::{MatchedPath, Request};
    use axum::http::StatusCode;
    use axum::middleware::{self, Next};
    use axum::response::Response;
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    /// The label comes from the template even in a layer of a nested router, where
    /// `require_secret` sits; an element name in the path never becomes a label value.
    #[tokio::test]
    async fn endpoint_label_is_the_route_template() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let record = seen.clone();
        let peer = Router::new()
            .route("/local/elements/{name}", get(|| async { "ok" }))
            .route("/heartbeat", get(|| async { "ok" }))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let record = record.clone();
                async move {
                    let label = endpoint_label(req.extensions().get::<MatchedPath>()).to_owned();
                    record.lock().unwrap().push(label);
                    let r: Response = next.run(req).await;
                    r
                }
            }));
        let app = Router::new().nest("/peer/v1", peer);
        for path in [
            "/peer/v1/local/elements/sim-03",
            "/peer/v1/heartbeat",
            "/peer/v1/no/such/sim-03",
        ] {
            let req = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        assert_eq!(
            *seen.lock().unwrap(),
            ["local/elements/{name}", "heartbeat", "unmatched"]
        );
    }
}
