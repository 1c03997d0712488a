//! `GET /api/v1/console/elements`: the pool's elements as the console lists them — one small
//! row each. The full `/api/v1/elements` answer carries every interface (~3 KB per element,
//! ~30 MB at 10,000), far too much for a list that must draw within a second.

use crate::api::Shared;
use crate::api::client::ElementsAnswer;
use crate::api::error::ApiError;
use crate::api::peered;
use crate::model::{ElementState, ElementView, Protocol, ServerId, UnixMillis};
use axum::Json;
use axum::extract::{Query, State};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: Arc<str>,
    pub(crate) address: Arc<str>,
    pub(crate) protocol: Protocol,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<ServerId>,
    pub(crate) state: ElementState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) alarms: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_poll: Option<UnixMillis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sys_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Answer {
    pub(crate) elements: Vec<Row>,
    pub(crate) partial: bool,
    pub(crate) missing: Vec<ServerId>,
}

impl From<ElementView> for Row {
    fn from(v: ElementView) -> Row {
        Row {
            name: v.element.name,
            address: v.element.address,
            protocol: v.element.protocol,
            owner: v.owner,
            state: v.status.state,
            reason: v.status.reason,
            alarms: v.active_alarms,
            last_poll: v.status.last_poll,
            sys_name: v.status.sys_name,
        }
    }
}

pub(crate) async fn summary(State(s): State<Shared>) -> Result<Json<Answer>, ApiError> {
    let Json(ElementsAnswer {
        elements,
        partial,
        missing,
    }) = peered::elements(State(s), Ok(Query(Default::default()))).await?;
    Ok(Json(Answer {
        elements: elements.into_iter().map(Row::from).collect(),
        partial,
        missing,
    }))
}
