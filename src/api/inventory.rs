//! Inventory changes from clients: validated here, applied by the master's one writer,
//! distributed by it. 201/204 when the master applied and persisted an assignment with the
//! change (its id is `applied`); 202 when the master persisted the change and its next round
//! will distribute it. Nothing is answered yes before the master persisted it.

use super::Shared;
use super::error::ApiError;
use super::peer::cluster_error;
use crate::cluster::InventoryChange;
use crate::cluster::inventory::{Accepted, Forwarded};
use crate::cluster::protocol::AssignmentId;
use crate::config::validate_element_fields;
use crate::model::Element;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// How long the master waits for a change to be in an assignment it applied and persisted
/// before it answers "accepted" (202) rather than "applied" (201).
pub(crate) const SETTLE: Duration = Duration::from_secs(3);
/// How long a member waits for the master's answer to a forwarded change.
const FORWARD: Duration = Duration::from_secs(20);
/// How long this server then waits for its own copy to catch up (read your writes).
const LOCAL: Duration = Duration::from_secs(1);

/// The answer to an add: the element, and the assignment that carries it once the master
/// applied one (`null` with 202: persisted by the master, distributed by its next round).
#[derive(serde::Serialize)]
pub(crate) struct Added {
    #[serde(flatten)]
    element: Element,
    applied: Option<AssignmentId>,
}

pub(crate) async fn add(
    State(s): State<Shared>,
    body: Result<Json<Element>, JsonRejection>,
) -> Result<(StatusCode, Json<Added>), ApiError> {
    let Json(e) = body.map_err(|e| ApiError::from_json(&e))?;
    // The profile it names is checked by the master against the pool's (400 when unknown).
    validate_element_fields(&e).map_err(|(k, m)| ApiError::BadRequest(format!("{k}: {m}")))?;
    // As check-config does: the master would keep a pin to a non-member unassigned forever.
    if let Some(pin) = e.pin
        && !s.cluster.member_ids().contains(&pin)
    {
        return Err(ApiError::BadRequest(format!(
            "elements[{}].pin: server {pin} is not a member of the pool",
            e.name
        )));
    }
    let a = forward(&s, InventoryChange::Add(e.clone())).await?;
    Ok((
        if a.applied.is_some() {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        },
        Json(Added {
            element: e,
            applied: a.applied,
        }),
    ))
}

pub(crate) async fn remove(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let a = forward(&s, InventoryChange::Remove(name.clone())).await?;
    Ok(if a.applied.is_some() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "name": name, "applied": null })),
        )
            .into_response()
    })
}

/// To the master (locally when this server is master, else over the peer protocol), which
/// answers once the change is persisted; then a short wait for this server's own copy.
pub(crate) async fn forward(s: &Shared, change: InventoryChange) -> Result<Accepted, ApiError> {
    let master = s
        .cluster
        .master()
        .ok_or_else(|| ApiError::Unavailable("the pool has no master right now".into()))?;
    let accepted = if master == s.id {
        s.cluster
            .change_inventory(change, false, SETTLE)
            .await
            .map_err(cluster_error)?
    } else {
        let body = Forwarded {
            change,
            replay: false,
        };
        // Well beyond the master's own wait (a busy master queues changes for a while): a
        // timeout here leaves the outcome unknown, which the answer must then say.
        s.cluster
            .transport
            .post::<_, Accepted>(master, "/peer/v1/inventory", &body, FORWARD)
            .await
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
                other => ApiError::Unavailable(format!(
                    "{other}; the change may or may not have been applied"
                )),
            })?
    };
    if let Some(id) = accepted.applied {
        let deadline = tokio::time::Instant::now() + LOCAL;
        while s.cluster.assignment_id() < id && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(accepted)
}
