//! Every `/api/v1` error is JSON `{"error": "..."}`, also those axum and hyper make
//! themselves (a body over the limit: 413, a wrong method: 405, an unsupported media type),
//! whose bodies are plain text or empty. Scripts can then parse every error the same way.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What is kept of a plain-text error body (axum's are one short line).
const MAX_TEXT: usize = 1024;

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

pub(crate) async fn layer(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(resp.headers()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_owned(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut out = (status, Json(serde_json::json!({ "error": text }))).into_response();
    // Keep what the error says besides its body (Allow on a 405, Retry-After...).
    let own: Vec<header::HeaderName> = out.headers().keys().cloned().collect();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && !own.contains(name) {
            out.headers_mut().append(name, value.clone());
        }
    }
    out
}
