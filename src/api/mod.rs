//! The HTTP API: client endpoints under `/api/v1`, operations endpoints at the root.

pub mod client;
pub mod error;
pub mod fanout;
pub mod inventory;
pub mod local;
pub mod peer;
pub mod peered;
pub mod stream;
pub mod view;

use crate::alarms::AlarmTable;
use crate::cluster::Cluster;
use crate::config::Secret;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::ServerId;
use crate::poll::Poller;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Everything a request handler may read or change on this server.
pub struct AppState {
    pub id: ServerId,
    pub poller: Arc<Poller>,
    pub cluster: Arc<Cluster>,
    pub alarms: Arc<AlarmTable>,
    pub events: EventLog,
    pub metrics: Metrics,
    pub token: Option<Secret>,
    pub protect_metrics: bool,
    pub ready: AtomicBool,
    pub traps: Arc<crate::poll::traps::TrapService>,
}

pub type Shared = Arc<AppState>;

pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/elements", get(peered::elements).post(inventory::add))
        .route(
            "/elements/{name}",
            get(peered::element).delete(inventory::remove),
        )
        .route("/alarms", get(peered::alarms))
        .route("/alarms/{id}/ack", post(peered::ack))
        .route("/events", get(peered::events))
        .route("/pool", get(client::pool))
        .route("/view", get(view::view))
        .route("/stream", get(stream::stream))
        .route("/console/elements", get(crate::console::elements::summary))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .nest("/api/v1", api)
        .nest("/peer/v1", peer::router(state.clone()))
        .merge(crate::console::router())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(metrics).layer(middleware::from_fn_with_state(state.clone(), metrics_token)),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn_with_state(
            crate::console::headers::policy(&state),
            crate::console::headers::layer,
        ))
        .with_state(state)
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    let states = s.poller.state_counts();
    let body = s.metrics.render(
        &s.alarms.counts_by_severity(),
        &states,
        s.events.written_total(),
        s.events.write_errors_total(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn count_requests(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    s.metrics.observe_api(resp.status().as_u16());
    resp
}

async fn metrics_token(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if s.protect_metrics {
        require_token(State(s), req, next).await
    } else {
        next.run(req).await
    }
}

/// Bearer-token check; the comparison takes the same time wherever the first difference is.
async fn require_token(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(expected) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.expose().as_bytes())) {
            s.metrics.auth_failures.with_label_values(&["client"]).inc();
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
