//! Response headers for every answer: CORS for exactly the pool members' origins (the console
//! moves to another member when its own dies, and its calls then cross origins), and the
//! security headers (CSP without inline script, no framing, no sniffing, no referrer).

use crate::api::Shared;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What the layer allows; computed once from the configured members (they change only with
/// a restart).
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    origins: Vec<String>,
    csp: HeaderValue,
}

impl Policy {
    pub(crate) fn for_members(urls: impl IntoIterator<Item = String>) -> Policy {
        let mut origins: Vec<String> = urls.into_iter().filter_map(|u| origin_of(&u)).collect();
        origins.sort();
        origins.dedup();
        // Origins are scheme://host[:port] of configured URLs; anything unusual in one (a
        // character a header cannot carry) leaves it out of connect-src rather than failing.
        let connect: Vec<&str> = origins
            .iter()
            .map(String::as_str)
            .filter(|o| o.bytes().all(|b| b.is_ascii_graphic() && b != b';'))
            .collect();
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' {}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            connect.join(" ")
        );
        let csp = HeaderValue::from_str(&csp).unwrap_or_else(|_| {
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
            )
        });
        Policy { origins, csp }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// `scheme://host[:port]` of a URL, lower case, without the default port, as browsers send it
/// in `Origin`.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() || !matches!(scheme.as_str(), "http" | "https") {
        return None;
    }
    let default = if scheme == "http" { ":80" } else { ":443" };
    let authority = authority.strip_suffix(default).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

pub(crate) fn policy(s: &Shared) -> Arc<Policy> {
    let urls = s
        .cluster
        .member_ids()
        .into_iter()
        .filter_map(|id| s.cluster.member_url(id));
    Arc::new(Policy::for_members(urls))
}

pub(crate) async fn layer(State(p): State<Arc<Policy>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| p.allows(o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        // Answered here, before routing and the token check: a preflight carries no token.
        if origin.is_some() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            StatusCode::FORBIDDEN.into_response()
        }
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    security(h, &p.csp);
    resp
}

fn security(h: &mut HeaderMap, csp: &HeaderValue) {
    h.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_what_browsers_send() {
        assert_eq!(
            origin_of("http://127.0.0.1:8780").as_deref(),
            Some("http://127.0.0.1:8780")
        );
        assert_eq!(
            origin_of("HTTP://Host.Example:80/base/").as_deref(),
            Some("http://host.example")
        );
        assert_eq!(origin_of("https://h:443").as_deref(), Some("https://h"));
        assert_eq!(origin_of("ftp://h"), None);
        assert_eq!(origin_of("no scheme"), None);
        assert_eq!(origin_of("http://"), None);
    }

    #[test]
    fn only_members_are_allowed_and_named_in_the_csp() {
        let p = Policy::for_members([
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2/".to_owned(),
            "http://bad;host".to_owned(),
        ]);
        assert!(p.allows("http://127.0.0.1:1"));
        assert!(p.allows("http://127.0.0.1:2"));
        assert!(!p.allows("http://127.0.0.1:3"));
        assert!(!p.allows("null"));
        let csp = p.csp.to_str().unwrap_or_default();
        assert!(csp.contains("connect-src 'self' http://127.0.0.1:1 http://127.0.0.1:2;"));
        assert!(!csp.contains("bad"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
