//! The HTTP API: client endpoints under `/api/v1`, operations endpoints at the root.

pub(crate) mod client;
mod console;
pub(crate) mod credentials;
mod devices;
pub(crate) mod error;
pub(crate) mod fanout;
pub(crate) mod inventory;
mod json_errors;
pub(crate) mod local;
pub(crate) mod peer;
pub(crate) mod peered;
pub(crate) mod stream;
pub(crate) mod view;

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
use subtle::ConstantTimeEq;

/// Everything a request handler may read or change on this server.
pub(crate) struct AppState {
    pub(crate) id: ServerId,
    pub(crate) poller: Arc<Poller>,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) alarms: Arc<AlarmTable>,
    pub(crate) events: EventLog,
    pub(crate) metrics: Metrics,
    pub(crate) token: Option<Secret>,
    pub(crate) protect_metrics: bool,
    pub(crate) ready: AtomicBool,
    pub(crate) traps: Arc<crate::traps::TrapService>,
    /// Reads dead members' events from JetStream (`[events.jetstream]`), if configured.
    pub(crate) jetstream: Option<Arc<crate::northbound::jetstream::Reader>>,
}

pub(crate) type Shared = Arc<AppState>;

pub(crate) fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/elements", get(peered::elements).post(inventory::add))
        .route(
            "/elements/{name}",
            get(peered::element).delete(inventory::remove),
        )
        .route("/credentials", get(credentials::list))
        .route(
            "/credentials/{name}",
            axum::routing::put(credentials::set).delete(credentials::remove),
        )
        .route("/alarms", get(peered::alarms))
        .route("/alarms/{id}/ack", post(peered::ack))
        .route("/events", get(peered::events))
        .route("/pool", get(client::pool))
        .route("/view", get(view::view))
        .route("/stream", get(stream::stream))
        .route("/console/elements", get(console::elements::summary))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // After the token layer, so it follows the metrics rule (`protect_metrics`) instead.
        .route(
            "/sd/devices",
            get(devices::sd).layer(middleware::from_fn_with_state(state.clone(), metrics_token)),
        )
        .layer(middleware::from_fn(json_errors::layer));
    Router::new()
        .nest("/api/v1", api)
        .nest("/peer/v1", peer::router(state.clone()))
        .merge(console::router())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(metrics).layer(middleware::from_fn_with_state(state.clone(), metrics_token)),
        )
        .route(
            "/metrics/devices",
            get(devices::scrape)
                .layer(middleware::from_fn_with_state(state.clone(), metrics_token)),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn_with_state(
            console::headers::policy(&state),
            console::headers::layer,
        ))
        .with_state(state)
}

/// Ready once started, and only while the event log and the pool state (the same redb file)
/// can be written: a server that cannot persist a term or an assignment must not be chosen
/// by a load balancer, and the reason says what to fix.
async fn readyz(State(s): State<Shared>) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    match s.events.health().outage {
        None => "ready\n".into_response(),
        Some((since, reason)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the event log and pool state cannot be written (since {since} ms \
                 Unix time): {reason}\n"
            ),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    let states = s.poller.state_counts();
    s.metrics.faults.storage(&s.events.health());
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
        if !given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.expose().as_bytes()))) {
            s.metrics.auth_failures.with_label_values(&["client"]).inc();
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}
