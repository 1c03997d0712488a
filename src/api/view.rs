//! `GET /api/v1/view`: the pool drawn as servers -> elements, from live memory, or with
//! `source=db` from the persisted assignment and the event logs (works with owners down).

use super::client::{ElementsAnswer, EventsAnswer, bad_query};
use super::error::ApiError;
use super::{Shared, fanout, local, peered};
use crate::cluster::protocol::Assignment;
use crate::eventlog::{EventCursor, EventQuery};
use crate::model::{ElementState, Event, ServerId};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ViewParams {
    /// `live` (default) or `db`.
    pub(crate) source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ViewAnswer {
    pub(crate) source: String,
    pub(crate) master: Option<ServerId>,
    pub(crate) term: u64,
    pub(crate) servers: Vec<ServerNode>,
    /// Elements with no owner (no master yet, or no live member).
    #[serde(default)]
    pub(crate) unassigned: Vec<ElementNode>,
    #[serde(default)]
    pub(crate) partial: bool,
    #[serde(default)]
    pub(crate) missing: Vec<ServerId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerNode {
    pub(crate) id: ServerId,
    pub(crate) url: String,
    pub(crate) alive: bool,
    pub(crate) master: bool,
    pub(crate) elements: Vec<ElementNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ElementNode {
    pub(crate) name: String,
    pub(crate) state: ElementState,
    pub(crate) alarms: usize,
}

pub(crate) async fn view(
    State(s): State<Shared>,
    params: Result<Query<ViewParams>, QueryRejection>,
) -> Result<Json<ViewAnswer>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    match p.source.as_deref() {
        None | Some("live") => live(s).await,
        Some("db") => from_db(s).await,
        Some(other) => Err(ApiError::BadRequest(format!(
            "source {other:?}: expected live or db"
        ))),
    }
}

fn skeleton(s: &Shared, source: &str) -> ViewAnswer {
    let pool = s.cluster.view();
    ViewAnswer {
        source: source.to_owned(),
        master: pool.master,
        term: pool.term,
        servers: pool
            .members
            .iter()
            .map(|m| ServerNode {
                id: m.id,
                url: m.url.clone(),
                alive: m.alive,
                master: m.master,
                elements: Vec::new(),
            })
            .collect(),
        unassigned: Vec::new(),
        partial: false,
        missing: Vec::new(),
    }
}

fn place(v: &mut ViewAnswer, owner: Option<ServerId>, node: ElementNode) {
    match owner.and_then(|o| v.servers.iter_mut().find(|sv| sv.id == o)) {
        Some(sv) => sv.elements.push(node),
        None => v.unassigned.push(node),
    }
}

async fn live(s: Shared) -> Result<Json<ViewAnswer>, ApiError> {
    let Json(els): Json<ElementsAnswer> =
        peered::elements(State(s.clone()), Ok(Query(Default::default()))).await?;
    let mut v = skeleton(&s, "live");
    for e in els.elements {
        let node = ElementNode {
            name: e.element.name.to_string(),
            state: e.status.state,
            alarms: e.active_alarms,
        };
        place(&mut v, e.owner, node);
    }
    v.partial = els.partial;
    v.missing = els.missing;
    Ok(Json(v))
}

/// From storage only: the assignment persisted here, and the last state and alarm events of
/// each element in the logs of every member that answers.
async fn from_db(s: Shared) -> Result<Json<ViewAnswer>, ApiError> {
    let assignment: Assignment = s
        .events
        .meta_get(crate::cluster::META_ASSIGNMENT)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Both at once: one after the other, a hung member would cost two fan-out deadlines.
    let (states, alarms) =
        tokio::join!(pool_events(&s, "element.state"), pool_events(&s, "alarm.*"));
    let ((states, state_missing), (alarms, alarm_missing)) = (states?, alarms?);
    let mut last_state: BTreeMap<&str, ElementState> = BTreeMap::new();
    for e in &states {
        if let Some(el) = e.element.as_deref() {
            last_state.entry(el).or_insert_with(|| state_in(&e.text));
        }
    }
    // Newest first: the first raise/clear seen per alarm key says whether it is active.
    let mut key_state: BTreeMap<&str, (Option<&str>, bool)> = BTreeMap::new();
    for e in &alarms {
        let Some(key) = key_in(&e.text) else { continue };
        let active = match e.kind.as_str() {
            "alarm.raised" => true,
            "alarm.cleared" => false,
            _ => continue,
        };
        key_state
            .entry(key)
            .or_insert((e.element.as_deref(), active));
    }
    let mut active: BTreeMap<&str, usize> = BTreeMap::new();
    for (el, on) in key_state.values() {
        if let (Some(el), true) = (el, on) {
            *active.entry(el).or_insert(0) += 1;
        }
    }
    let mut v = skeleton(&s, "db");
    for e in &assignment.elements {
        let node = ElementNode {
            name: e.name.to_string(),
            state: last_state.get(&*e.name).copied().unwrap_or_default(),
            alarms: active.get(&*e.name).copied().unwrap_or(0),
        };
        place(&mut v, assignment.owners.get(&e.name).copied(), node);
    }
    let mut missing = state_missing;
    missing.extend(alarm_missing);
    missing.sort();
    missing.dedup();
    v.partial = !missing.is_empty();
    v.missing = missing;
    Ok(Json(v))
}

/// Newest events of one kind from this server's log and every member that answers.
async fn pool_events(s: &Shared, kind: &str) -> Result<(Vec<Event>, Vec<ServerId>), ApiError> {
    let q = EventQuery {
        kind: Some(kind.to_owned()),
        limit: 10_000,
        ..EventQuery::default()
    };
    let mut all = local::events(s, q.clone()).await?.events;
    let path = format!("/peer/v1/local/events?kind={kind}&limit=10000");
    let gathered = fanout::get::<EventsAnswer>(s, &path).await;
    for (_, a) in gathered.answers {
        all.extend(a.events);
    }
    let mut missing = gathered.missing;
    let filled =
        crate::northbound::jetstream::fill_missing(s.jetstream.as_deref(), &q, &mut missing).await;
    all.extend(filled.events);
    all.sort_by_key(|e| std::cmp::Reverse(EventCursor::from(e)));
    Ok((all, missing))
}

/// `element.state` texts read `up -> down: why` or `still unknown: why`.
fn state_in(text: &str) -> ElementState {
    let after = text
        .split_once("-> ")
        .map(|(_, t)| t)
        .or_else(|| text.strip_prefix("still "))
        .unwrap_or("");
    match after.split(':').next().unwrap_or("").trim() {
        "up" => ElementState::Up,
        "down" => ElementState::Down,
        _ => ElementState::Unknown,
    }
}

/// Alarm event texts carry the reduction key in brackets: `LinkDown [LinkDown:r1:3]: ...`.
fn key_in(text: &str) -> Option<&str> {
    let start = text.find('[')? + 1;
    let len = text[start..].find(']')?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_keys_are_read_back_from_event_texts() {
        assert_eq!(state_in("unknown -> up"), ElementState::Up);
        assert_eq!(state_in("up -> down: no answer"), ElementState::Down);
        assert_eq!(state_in("still unknown: auth"), ElementState::Unknown);
        assert_eq!(key_in("LinkDown [LinkDown:r1:3]: x"), Some("LinkDown:r1:3"));
        assert_eq!(key_in("no key"), None);
    }
}
