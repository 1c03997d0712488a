//! Peer endpoints under `/peer/v1`: election, heartbeats, assignments and hand-over.
//! Every request must carry the pool secret; refusals are counted.

use super::error::ApiError;
use super::{Shared, constant_time_eq};
use crate::cluster::ClusterError;
use crate::cluster::protocol::{
    Assignment, ElectionEnvelope, Fault, Heartbeat, Push, Release, Released,
};
use crate::cluster::transport::FROM_HEADER;
use crate::model::ServerId;
use crate::poll::traps::{BatchResult, TrapBatch};
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

pub fn router(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/heartbeat", post(heartbeat))
        .route("/election", post(election))
        .route("/release", post(release))
        .route("/assignment", post(assignment).get(current_assignment))
        .route("/fault", post(set_fault).get(get_fault))
        .route("/traps", post(traps))
        .fallback(|| async { ApiError::NotFound("no such peer endpoint".into()) })
        .layer(middleware::from_fn_with_state(state, require_secret))
}

async fn require_secret(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let secret = s.cluster.secret();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = !secret.is_empty()
        && given.is_some_and(|g| constant_time_eq(g.as_bytes(), secret.expose().as_bytes()));
    if !ok {
        s.metrics.auth_failures.with_label_values(&["peer"]).inc();
        return ApiError::Unauthorized.into_response();
    }
    // A partition injected by a test drops traffic from the blocked side too.
    let from = req
        .headers()
        .get(FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .map(ServerId);
    if let Some(from) = from
        && s.cluster.transport.is_blocked(from)
    {
        return ApiError::Unavailable(format!("server {from} is cut off (fault injection)"))
            .into_response();
    }
    let endpoint = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
    s.metrics
        .peer_requests
        .with_label_values(&[endpoint.as_str()])
        .inc();
    next.run(req).await
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn cluster_error(e: ClusterError) -> ApiError {
    match e {
        ClusterError::StaleTerm { .. } => ApiError::Conflict(e.to_string()),
        ClusterError::Store(m) => ApiError::Internal(m),
    }
}

async fn heartbeat(
    State(s): State<Shared>,
    hb: Result<Json<Heartbeat>, JsonRejection>,
) -> Result<Json<Heartbeat>, ApiError> {
    Ok(Json(s.cluster.on_heartbeat(body(hb)?)))
}

async fn election(
    State(s): State<Shared>,
    env: Result<Json<ElectionEnvelope>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let env = body(env)?;
    s.cluster.on_election(env.from, env.msg);
    Ok(Json(serde_json::json!({})))
}

async fn release(
    State(s): State<Shared>,
    r: Result<Json<Release>, JsonRejection>,
) -> Result<Json<Released>, ApiError> {
    let r = body(r)?;
    s.cluster.release(r).await.map(Json).map_err(cluster_error)
}

async fn assignment(
    State(s): State<Shared>,
    p: Result<Json<Push>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = body(p)?;
    s.cluster.apply_push(p).await.map_err(cluster_error)?;
    Ok(Json(serde_json::json!({})))
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
