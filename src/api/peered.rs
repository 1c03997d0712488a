//! The peered service: any server answers for the whole pool by asking the others (through
//! their federated endpoints) and merging. A member that does not answer in time is named in
//! `missing`; the answer is `partial` when that member's data is really absent from it.

use super::client::{
    AckBody, AlarmParams, AlarmsAnswer, ElementParams, ElementsAnswer, EventParams, EventsAnswer,
    bad_query, is_local,
};
use super::error::ApiError;
use super::{Shared, fanout, local};
use crate::alarms::sort_alarms;
use crate::eventlog::EventCursor;
use crate::model::{Alarm, ElementStatus, ElementView, ServerId};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Members among `missing` that own elements: only their absence makes an answer about
/// elements or alarms incomplete (a dead member that owns nothing holds nothing).
fn owners_missing(s: &Shared, missing: &[ServerId]) -> Vec<ServerId> {
    let owners = s.cluster.assignment().owners;
    missing
        .iter()
        .copied()
        .filter(|m| owners.values().any(|o| o == m))
        .collect()
}

fn with_query(path: &str, raw: &Option<String>) -> String {
    match raw {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// Every element of the inventory with its owner and the owner's live status.
pub(crate) async fn elements(
    State(s): State<Shared>,
    params: Result<Query<ElementParams>, QueryRejection>,
) -> Result<Json<ElementsAnswer>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    if is_local(&params.scope)? {
        return Ok(Json(ElementsAnswer {
            elements: local::elements(&s),
            partial: false,
            missing: vec![],
        }));
    }
    let gathered = fanout::get::<ElementsAnswer>(&s, "/peer/v1/local/elements").await;
    let mut live: BTreeMap<Arc<str>, ElementView> = local::elements(&s)
        .into_iter()
        .map(|v| (v.element.name.clone(), v))
        .collect();
    for (_, a) in gathered.answers {
        for v in a.elements {
            live.insert(v.element.name.clone(), v);
        }
    }
    let assignment = s.cluster.assignment();
    let mut out: BTreeMap<Arc<str>, ElementView> = BTreeMap::new();
    for e in &assignment.elements {
        let owner = assignment.owners.get(&e.name).copied();
        let view = live
            .remove(&e.name)
            .unwrap_or_else(|| unanswered(e.clone(), owner));
        out.insert(e.name.clone(), view);
    }
    // Polled but not in the assignment known here: a hand-over in flight; show it anyway.
    out.extend(live);
    let missing = owners_missing(&s, &gathered.missing);
    Ok(Json(ElementsAnswer {
        elements: out.into_values().collect(),
        partial: !missing.is_empty(),
        missing,
    }))
}

/// One element, answered by its owner.
pub(crate) async fn element(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ElementView>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(v) = local::element(&s, &name) {
        return Ok(Json(v));
    }
    let assignment = s.cluster.assignment();
    let def = assignment
        .elements
        .iter()
        .find(|e| *e.name == *name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no element named {name:?}")))?;
    let owner = assignment.owners.get(name.as_str()).copied();
    if let Some(o) = owner.filter(|o| *o != s.id) {
        let path = format!("/peer/v1/local/elements/{name}");
        if let Ok(v) = s
            .cluster
            .transport
            .get::<ElementView>(o, &path, fanout::DEADLINE)
            .await
        {
            return Ok(Json(v));
        }
    }
    Ok(Json(unanswered(def, owner)))
}

/// An element whose owner could not be asked: its definition, state unknown, and why.
fn unanswered(element: crate::model::Element, owner: Option<ServerId>) -> ElementView {
    ElementView {
        element,
        owner,
        status: ElementStatus {
            reason: Some(match owner {
                Some(o) => format!("owner server {o} did not answer"),
                None => "no owner yet".to_owned(),
            }),
            ..ElementStatus::default()
        },
        active_alarms: 0,
    }
}

/// Active alarms of the whole pool, most severe first.
pub(crate) async fn alarms(
    State(s): State<Shared>,
    params: Result<Query<AlarmParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AlarmsAnswer>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let filter = params.filter()?;
    let limit = params.limit();
    let (mut all, mut total) = local::alarms(&s, &filter, limit);
    if is_local(&params.scope)? {
        return Ok(Json(AlarmsAnswer {
            alarms: all,
            total,
            partial: false,
            missing: vec![],
        }));
    }
    // Each member sends its own first `limit`; the pool's first `limit` are among them.
    let path = with_query("/peer/v1/local/alarms", &raw);
    let gathered = fanout::get::<AlarmsAnswer>(&s, &path).await;
    for (_, a) in gathered.answers {
        all.extend(a.alarms);
        total += a.total;
    }
    sort_alarms(&mut all);
    // During a hand-over an alarm may be seen on both sides for a moment; one copy is enough.
    let mut seen = std::collections::HashSet::new();
    all.retain(|a| seen.insert(a.id));
    all.truncate(limit);
    let missing = owners_missing(&s, &gathered.missing);
    Ok(Json(AlarmsAnswer {
        alarms: all,
        total,
        partial: !missing.is_empty(),
        missing,
    }))
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct AckRequest {
    pub(crate) id: u64,
    pub(crate) by: String,
}

/// Acknowledges on whichever server holds the alarm (its element's owner).
pub(crate) async fn ack(
    State(s): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
    body: axum::body::Bytes,
) -> Result<Json<Alarm>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(format!("alarm id: {}", e.body_text())))?;
    let by = AckBody::who(&body)?;
    match local::ack(&s, id, &by) {
        Err(ApiError::NotFound(_)) => {}
        other => return other.map(Json),
    }
    let req = AckRequest { id, by };
    let gathered = fanout::post::<_, Alarm>(&s, "/peer/v1/local/ack", &req).await;
    if let Some((_, a)) = gathered.answers.into_iter().next() {
        return Ok(Json(a));
    }
    if gathered.missing.is_empty() {
        Err(ApiError::NotFound(format!("no active alarm with id {id}")))
    } else {
        Err(ApiError::Unavailable(format!(
            "no active alarm with id {id} on the servers that answered; server(s) {:?} did not",
            gathered.missing
        )))
    }
}

/// The event logs of all members merged newest first; `next` pages through all of them.
pub(crate) async fn events(
    State(s): State<Shared>,
    params: Result<Query<EventParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventsAnswer>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let q = params.query()?;
    let limit = q.limit;
    let page = local::events(&s, q.clone()).await?;
    if is_local(&params.scope)? {
        return Ok(Json(EventsAnswer {
            events: page.events,
            next: page.next.map(|c| c.to_string()),
            partial: false,
            missing: vec![],
            from_stream: vec![],
        }));
    }
    let path = with_query("/peer/v1/local/events", &raw);
    let gathered = fanout::get::<EventsAnswer>(&s, &path).await;
    let mut missing = gathered.missing;
    // Members that did not answer: their events from JetStream, when it is configured.
    let filled =
        crate::northbound::jetstream::fill_missing(s.jetstream.as_deref(), &q, &mut missing).await;
    let partial = !missing.is_empty();
    let mut more = page.next.is_some() || filled.more;
    let mut all = page.events;
    all.extend(filled.events);
    for (_, a) in gathered.answers {
        more |= a.next.is_some();
        all.extend(a.events);
    }
    all.sort_by_key(|e| std::cmp::Reverse(EventCursor::from(e)));
    more |= all.len() > limit;
    all.truncate(limit);
    let next = if more {
        all.last().map(|e| EventCursor::from(e).to_string())
    } else {
        None
    };
    Ok(Json(EventsAnswer {
        events: all,
        next,
        partial,
        missing,
        from_stream: filled.from_stream,
    }))
}
