//! The HTTP side of the device metrics (`northbound::devices`) and of their discovery
//! (`northbound::sd`): parameters, the bound on parallel scrapes, streaming and gzip.

use super::Shared;
use super::client::bad_query;
use super::error::ApiError;
use crate::northbound::devices::{Shard, Snapshot, accepts_gzip, render};
use crate::northbound::sd::{TargetGroup, groups};
use crate::northbound::stream;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::io::Write;
use std::sync::{Arc, LazyLock};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Device scrapes rendering at once; more wait (each costs a CPU while it runs).
const PARALLEL_SCRAPES: usize = 2;

static SCRAPES: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(PARALLEL_SCRAPES)));

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScrapeParams {
    pub(crate) shard: Option<u32>,
    pub(crate) shards: Option<u32>,
}

/// The handler of `GET /metrics/devices[?shard=I&shards=N]`.
pub(crate) async fn scrape(
    State(s): State<Shared>,
    params: Result<Query<ScrapeParams>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let p = match params {
        Ok(Query(p)) => p,
        Err(e) => return bad_query(e).into_response(),
    };
    let shard = match Shard::parse(p.shard, p.shards) {
        Ok(s) => s,
        Err(why) => return ApiError::BadRequest(why).into_response(),
    };
    let gzip = accepts_gzip(&headers);
    let Ok(permit) = SCRAPES.clone().acquire_owned().await else {
        return ApiError::Unavailable("shutting down".into()).into_response();
    };
    let (mut writer, body) = stream::channel();
    let (poller, me) = (s.poller.clone(), s.id);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let started = Instant::now();
        let snap = Snapshot::take(&poller, me, shard);
        let copied = started.elapsed();
        let result = if gzip {
            let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
            render(&snap, &mut gz).and_then(|st| Ok((st, gz.finish()?)))
        } else {
            render(&snap, &mut writer).map(|st| (st, writer))
        };
        match result.and_then(|(st, mut w)| w.flush().map(|_| st)) {
            Ok(st) => tracing::debug!(
                elements = st.elements,
                series = st.series,
                bytes = st.bytes,
                gzip,
                copy_ms = copied.as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                "device scrape"
            ),
            Err(e) => tracing::debug!("device scrape ended early: {e}"),
        }
    });
    let mut resp = Body::new(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// The handler of `GET /api/v1/sd/devices`: the members this server sees alive.
pub(crate) async fn sd(State(s): State<Shared>) -> Json<Vec<TargetGroup>> {
    let alive = s.cluster.alive_members();
    let members = alive
        .into_iter()
        .filter_map(|id| s.cluster.member_url(id).map(|u| (id.0, u)));
    Json(groups(members))
}
