//! Client endpoints: elements, alarms, acknowledgements, events.
//!
//! Answers are objects, never bare arrays, so that pool-wide answers can add `partial` and
//! `missing` without breaking clients.

use super::Shared;
use super::error::ApiError;
use crate::alarms::{AlarmError, AlarmFilter};
use crate::eventlog::{EventCursor, EventQuery};
use crate::model::{Alarm, ElementView, Event, ServerId, Severity, UnixMillis, now_millis};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, Serialize, Deserialize)]
pub struct ElementsAnswer {
    pub elements: Vec<ElementView>,
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub missing: Vec<ServerId>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmsAnswer {
    pub alarms: Vec<Alarm>,
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub missing: Vec<ServerId>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EventsAnswer {
    pub events: Vec<Event>,
    /// Pass as `before` to get the next (older) page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub missing: Vec<ServerId>,
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(e.body_text())
}

pub async fn elements(State(s): State<Shared>) -> Json<ElementsAnswer> {
    let elements = s
        .poller
        .statuses()
        .into_iter()
        .map(|(element, status)| ElementView {
            active_alarms: s.alarms.count_for(&element.name),
            element,
            owner: Some(s.id),
            status,
        })
        .collect();
    Json(ElementsAnswer {
        elements,
        partial: false,
        missing: vec![],
    })
}

pub async fn element(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ElementView>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (element, status) = s
        .poller
        .status_of(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no element named {name:?}")))?;
    Ok(Json(ElementView {
        active_alarms: s.alarms.count_for(&element.name),
        element,
        owner: Some(s.id),
        status,
    }))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AlarmParams {
    pub element: Option<String>,
    /// The least severe level to include, e.g. `major` gives critical and major.
    pub severity: Option<String>,
    pub acknowledged: Option<bool>,
    pub scope: Option<String>,
}

impl AlarmParams {
    pub fn filter(&self) -> Result<AlarmFilter, ApiError> {
        let min_severity = match &self.severity {
            None => None,
            Some(s) => Some(Severity::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "severity {s:?}: expected critical, major, minor, warning or indeterminate"
                ))
            })?),
        };
        Ok(AlarmFilter {
            element: self.element.clone(),
            min_severity,
            acknowledged: self.acknowledged,
        })
    }
}

pub async fn alarms(
    State(s): State<Shared>,
    params: Result<Query<AlarmParams>, QueryRejection>,
) -> Result<Json<AlarmsAnswer>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    if let Some(scope) = &params.scope
        && scope != "local"
        && scope != "pool"
    {
        return Err(ApiError::BadRequest(format!(
            "scope {scope:?}: expected local or pool"
        )));
    }
    let filter = params.filter()?;
    Ok(Json(AlarmsAnswer {
        alarms: s.alarms.list(&filter),
        partial: false,
        missing: vec![],
    }))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Who acknowledges; defaults to `api`.
    pub by: Option<String>,
}

pub async fn ack(
    State(s): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<Alarm>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(format!("alarm id: {}", e.body_text())))?;
    // The body is optional, so it is parsed here rather than by the Json extractor.
    let by = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<AckBody>(&body)
            .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
            .by
    }
    .unwrap_or_else(|| "api".to_owned());
    if by.is_empty() || by.len() > 128 || by.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "by: 1-128 printable characters".into(),
        ));
    }
    s.alarms.ack(id, &by).map(Json).map_err(|e| match e {
        AlarmError::NotFound(_) => ApiError::NotFound(e.to_string()),
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    pub element: Option<String>,
    pub kind: Option<String>,
    /// Unix milliseconds, RFC 3339, or a duration ago such as `15m`.
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<usize>,
    /// Cursor from a previous answer's `next`.
    pub before: Option<String>,
}

impl EventParams {
    pub fn query(&self) -> Result<EventQuery, ApiError> {
        let before = match &self.before {
            None => None,
            Some(c) => Some(
                c.parse::<EventCursor>()
                    .map_err(|_| ApiError::BadRequest(format!("before {c:?}: not a cursor")))?,
            ),
        };
        Ok(EventQuery {
            element: self.element.clone(),
            kind: self.kind.clone(),
            since: self.since.as_deref().map(parse_instant).transpose()?,
            until: self.until.as_deref().map(parse_instant).transpose()?,
            limit: self.limit.unwrap_or(100).min(10_000),
            before,
        })
    }
}

pub fn parse_instant(s: &str) -> Result<UnixMillis, ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        return Ok(d.as_millis() as i64);
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return Ok(now_millis() - ago.as_millis() as i64);
    }
    Err(ApiError::BadRequest(format!(
        "{s:?}: expected unix milliseconds, RFC 3339 time, or a duration ago like 15m"
    )))
}

pub async fn events(
    State(s): State<Shared>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<EventsAnswer>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let q = params.query()?;
    let log = s.events.clone();
    let page = tokio::task::spawn_blocking(move || log.query(&q))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(EventsAnswer {
        events: page.events,
        next: page.next.map(|c| c.to_string()),
        partial: false,
        missing: vec![],
    }))
}

pub async fn pool(State(s): State<Shared>) -> Json<crate::cluster::PoolView> {
    Json(s.cluster.view())
}
