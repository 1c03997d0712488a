//! Client endpoints: elements, alarms, acknowledgements, events.
//!
//! Answers are objects, never bare arrays, so that pool-wide answers can add `partial` and
//! `missing` without breaking clients.

use super::Shared;
use super::error::ApiError;
use crate::alarms::AlarmFilter;
use crate::eventlog::{EventCursor, EventQuery};
use crate::model::{Alarm, ElementView, Event, ServerId, Severity, UnixMillis, now_millis};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ElementsAnswer {
    pub(crate) elements: Vec<ElementView>,
    #[serde(default)]
    pub(crate) partial: bool,
    #[serde(default)]
    pub(crate) missing: Vec<ServerId>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AlarmsAnswer {
    pub(crate) alarms: Vec<Alarm>,
    /// Alarms matching the filter, of which the first `limit` are listed.
    #[serde(default)]
    pub(crate) total: usize,
    #[serde(default)]
    pub(crate) partial: bool,
    #[serde(default)]
    pub(crate) missing: Vec<ServerId>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EventsAnswer {
    pub(crate) events: Vec<Event>,
    /// Pass as `before` to get the next (older) page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<String>,
    #[serde(default)]
    pub(crate) partial: bool,
    #[serde(default)]
    pub(crate) missing: Vec<ServerId>,
    /// Members that did not answer whose events were read from JetStream instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) from_stream: Vec<ServerId>,
}

pub(crate) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(e.body_text())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmParams {
    pub(crate) element: Option<String>,
    /// The least severe level to include, e.g. `major` gives critical and major.
    pub(crate) severity: Option<String>,
    pub(crate) acknowledged: Option<bool>,
    pub(crate) scope: Option<String>,
    /// At most this many alarms, most severe and newest first (default 1000, max 100000).
    pub(crate) limit: Option<usize>,
}

pub(crate) const ALARM_LIMIT_DEFAULT: usize = 1000;
pub(crate) const ALARM_LIMIT_MAX: usize = 100_000;

impl AlarmParams {
    pub(crate) fn limit(&self) -> usize {
        self.limit
            .unwrap_or(ALARM_LIMIT_DEFAULT)
            .clamp(1, ALARM_LIMIT_MAX)
    }
}

/// `scope=local` (this server only) or `scope=pool` (the default).
pub(crate) fn is_local(scope: &Option<String>) -> Result<bool, ApiError> {
    match scope.as_deref() {
        None | Some("pool") => Ok(false),
        Some("local") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "scope {other:?}: expected local or pool"
        ))),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ElementParams {
    pub(crate) scope: Option<String>,
}

impl AlarmParams {
    pub(crate) fn filter(&self) -> Result<AlarmFilter, ApiError> {
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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckBody {
    /// Who acknowledges; defaults to `api`.
    pub(crate) by: Option<String>,
}

impl AckBody {
    /// The body is optional, so it is parsed here rather than by the Json extractor.
    pub(crate) fn who(body: &[u8]) -> Result<String, ApiError> {
        let by = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice::<AckBody>(body)
                .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
                .by
        }
        .unwrap_or_else(|| "api".to_owned());
        if by.is_empty() || by.len() > 128 || by.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(
                "by: 1-128 printable characters".into(),
            ));
        }
        Ok(by)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventParams {
    pub(crate) element: Option<String>,
    pub(crate) kind: Option<String>,
    /// Unix milliseconds, RFC 3339, or a duration ago such as `15m`.
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) limit: Option<usize>,
    /// Cursor from a previous answer's `next`.
    pub(crate) before: Option<String>,
    pub(crate) scope: Option<String>,
}

impl EventParams {
    pub(crate) fn query(&self) -> Result<EventQuery, ApiError> {
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

pub(crate) fn parse_instant(s: &str) -> Result<UnixMillis, ApiError> {
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

pub(crate) async fn pool(State(s): State<Shared>) -> Json<crate::cluster::PoolView> {
    Json(s.cluster.view())
}
