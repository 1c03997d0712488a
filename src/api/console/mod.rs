//! The web console: a single-page application served by every server at `/`, from assets
//! compiled into the binary (no CDN, no build step). It talks only to the public API
//! (`/api/v1`, plus the live stream), so any member can serve it and the browser can move to
//! another member when this one dies; [`headers`] allows exactly that (CORS for the members'
//! origins) and adds the security headers.

pub(crate) mod elements;
pub(crate) mod headers;

use crate::api::Shared;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Name, content type, bytes. Names are matched exactly: nothing from the path reaches a file.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dom.js"),
    ),
    (
        "pool.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/pool.js"),
    ),
    (
        "elements.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/elements.js"),
    ),
    (
        "alarms.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/alarms.js"),
    ),
    (
        "events.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/events.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
];

const INDEX: &str = include_str!("assets/index.html");

/// `/` and `/assets/{name}`; merged into the API router (which adds the headers layer).
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, body)) => page(ctype, body),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

fn page(ctype: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    // The assets change with the binary; revalidating costs one small request per file.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        let all: String = ASSETS.iter().map(|(_, _, b)| *b).chain([INDEX]).collect();
        for (i, _) in all.match_indices("./") {
            let rest = &all[i + 2..];
            let Some(end) = rest.find(['\'', '"']) else {
                continue;
            };
            let name = &rest[..end];
            if name.ends_with(".js") {
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{name} is imported but not served"
                );
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script() {
        assert!(!INDEX.contains("<script>"));
        // Inline event handlers (` onclick="..."`) break the CSP as inline script does.
        let handler = INDEX.match_indices(" on").any(|(i, _)| {
            let rest = &INDEX[i + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "inline event handler in index.html");
        assert!(!INDEX.contains("style="), "inline style breaks the CSP");
        for (n, _, b) in ASSETS {
            assert!(
                !b.contains("innerHTML"),
                "{n}: build nodes, not HTML strings"
            );
            assert!(!b.contains("eval("), "{n}");
        }
    }
}
