//! `[server]` keys that bound what clients can hold of a server (issue 14): how long a
//! connection may take to send a request head or body, how long it may stay idle, how many may
//! be open. Applied by `server::limits`.

use std::time::Duration;

pub(super) fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(super) fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
pub(super) fn default_max_connections() -> usize {
    512
}
pub(super) fn default_max_peer_connections() -> usize {
    64
}

/// One line per wrong key, as the rest of the validation.
pub(super) fn validate(s: &super::ServerSection) -> Result<(), (String, String)> {
    let err = |k: &str, m: &str| Err((format!("server.{k}"), m.to_owned()));
    for (key, d) in [
        ("header_timeout", s.header_timeout),
        ("body_timeout", s.body_timeout),
        ("idle_timeout", s.idle_timeout),
    ] {
        if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
            return err(key, "must be 100ms..=1h");
        }
    }
    if !(1..=1_000_000).contains(&s.max_connections) {
        return err("max_connections", "must be 1..=1000000");
    }
    if !(1..=100_000).contains(&s.max_peer_connections) {
        return err("max_peer_connections", "must be 1..=100000");
    }
    Ok(())
}
