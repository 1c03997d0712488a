//! Inventory changes from clients: validated here, applied by the master, distributed by it.

use super::Shared;
use super::error::ApiError;
use super::fanout::DEADLINE;
use super::peer::cluster_error;
use crate::cluster::InventoryChange;
use crate::config::validate_element;
use crate::model::Element;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::time::Duration;

/// How long a change waits to show up in this server's assignment before answering 202.
const SETTLE: Duration = Duration::from_secs(3);

pub(crate) async fn add(
    State(s): State<Shared>,
    body: Result<Json<Element>, JsonRejection>,
) -> Result<(StatusCode, Json<Element>), ApiError> {
    let Json(e) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    validate_element(&e, &s.poller.credentials())
        .map_err(|(k, m)| ApiError::BadRequest(format!("{k}: {m}")))?;
    let name = e.name.clone();
    forward(&s, InventoryChange::Add(e.clone())).await?;
    let done = settle(&s, |a| a.iter().any(|x| x.name == name)).await;
    Ok((
        if done {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        },
        Json(e),
    ))
}

pub(crate) async fn remove(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    forward(&s, InventoryChange::Remove(name.clone())).await?;
    let done = settle(&s, |a| !a.iter().any(|x| *x.name == *name)).await;
    Ok(if done {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    })
}

/// To the master: locally when this server is master, else over the peer protocol.
async fn forward(s: &Shared, change: InventoryChange) -> Result<(), ApiError> {
    let master = s
        .cluster
        .master()
        .ok_or_else(|| ApiError::Unavailable("the pool has no master right now".into()))?;
    if master == s.id {
        return s.cluster.change_inventory(change).map_err(cluster_error);
    }
    s.cluster
        .transport
        .post::<_, serde_json::Value>(master, "/peer/v1/inventory", &change, DEADLINE)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            crate::cluster::transport::PeerError::Refused(_, code, text) => {
                let msg = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or(text);
                match code {
                    404 => ApiError::NotFound(msg),
                    409 => ApiError::Conflict(msg),
                    400 => ApiError::BadRequest(msg),
                    _ => ApiError::Unavailable(msg),
                }
            }
            other => ApiError::Unavailable(other.to_string()),
        })
}

/// Waits (bounded) until this server's view of the inventory satisfies `done`.
async fn settle(s: &Shared, done: impl Fn(&[Element]) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::Instant::now() < deadline {
        if done(&s.cluster.assignment().elements) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
