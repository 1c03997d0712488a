//! This server's own answers (the federated service): what it polls, its alarms, its log.
//! Peers fetch these through `/peer/v1/local/...`; `?scope=local` returns them to clients.

use super::Shared;
use super::error::ApiError;
use crate::alarms::{AlarmError, AlarmFilter};
use crate::eventlog::{EventPage, EventQuery};
use crate::model::{Alarm, ElementView};

pub(crate) fn elements(s: &Shared) -> Vec<ElementView> {
    let counts = s.alarms.counts_by_element();
    s.poller
        .statuses()
        .into_iter()
        .map(|(element, status)| ElementView {
            active_alarms: counts.get(&*element.name).copied().unwrap_or(0),
            element,
            owner: Some(s.id),
            status,
        })
        .collect()
}

pub(crate) fn element(s: &Shared, name: &str) -> Option<ElementView> {
    let (element, status) = s.poller.status_of(name)?;
    Some(ElementView {
        active_alarms: s.alarms.count_for(&element.name),
        element,
        owner: Some(s.id),
        status,
    })
}

/// The first `limit` alarms in API order, and how many match in all.
pub(crate) fn alarms(s: &Shared, filter: &AlarmFilter, limit: usize) -> (Vec<Alarm>, usize) {
    let mut v = s.alarms.list(filter);
    let total = v.len();
    v.truncate(limit);
    (v, total)
}

pub(crate) fn ack(s: &Shared, id: u64, by: &str) -> Result<Alarm, ApiError> {
    s.alarms.ack(id, by).map_err(|e| match e {
        AlarmError::NotFound(_) => ApiError::NotFound(e.to_string()),
    })
}

pub(crate) async fn events(s: &Shared, q: EventQuery) -> Result<EventPage, ApiError> {
    let log = s.events.clone();
    tokio::task::spawn_blocking(move || log.query(&q))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}
