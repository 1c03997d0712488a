//! `[events.jetstream]`: where and how the event log is published to NATS JetStream.

use crate::config::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct JetStreamSection {
    /// `nats://host:port` or `tls://host:port`; the client fails over between them.
    pub(crate) servers: Vec<String>,
    /// User and password (NATS `authorization { user, password }`).
    #[serde(default)]
    pub(crate) user: Option<String>,
    #[serde(default)]
    pub(crate) password: Option<Secret>,
    /// Token authentication.
    #[serde(default)]
    pub(crate) token: Option<Secret>,
    /// A `.creds` file (JWT + NKey seed, as `nsc` writes it).
    #[serde(default)]
    pub(crate) creds_file: Option<PathBuf>,
    /// PEM file of the CA that signed the servers' certificates; implies TLS.
    #[serde(default)]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Require TLS even without `tls_ca` (system roots).
    #[serde(default)]
    pub(crate) tls_required: bool,
    #[serde(default = "default_stream")]
    pub(crate) stream: String,
    /// First tokens of every subject; names the pool: `{prefix}.{server}.{kind}`.
    #[serde(default = "default_prefix")]
    pub(crate) subject_prefix: String,
    #[serde(default = "default_replicas")]
    pub(crate) replicas: usize,
    /// The stream drops a message whose `Nats-Msg-Id` it saw this recently: re-publishes after
    /// a failure or a restart are not stored twice.
    #[serde(default = "default_duplicate_window", with = "humantime_serde")]
    pub(crate) duplicate_window: Duration,
    /// Published events waiting for their acknowledgement, at most.
    #[serde(default = "default_max_in_flight")]
    pub(crate) max_in_flight: usize,
    /// An acknowledgement not received within this is a failure (the event is sent again).
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub(crate) ack_timeout: Duration,
    /// Pool-wide event queries read a dead member's events from the stream for at most
    /// this long...
    #[serde(default = "default_read_timeout", with = "humantime_serde")]
    pub(crate) read_timeout: Duration,
    /// ...and at most this many messages; beyond either the member stays `missing`.
    #[serde(default = "default_read_max")]
    pub(crate) read_max: usize,
}

fn default_stream() -> String {
    "EMSPOOL_EVENTS".into()
}
fn default_prefix() -> String {
    "emspool.events".into()
}
fn default_replicas() -> usize {
    3
}
fn default_duplicate_window() -> Duration {
    Duration::from_secs(120)
}
fn default_max_in_flight() -> usize {
    1024
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_read_max() -> usize {
    200_000
}

/// NATS subject tokens: no whitespace, no wildcards, no separators inside.
fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
}

impl JetStreamSection {
    /// `Err((key under events.jetstream, message))`; messages never quote a secret.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((format!("events.jetstream.{k}"), m.to_owned()));
        if self.servers.is_empty() {
            return err("servers", "list at least one nats:// URL");
        }
        for s in &self.servers {
            let Some(rest) = s
                .strip_prefix("nats://")
                .or_else(|| s.strip_prefix("tls://"))
            else {
                return err("servers", "each must start with nats:// or tls://");
            };
            // A URL's user:password would end up in logs and in `emspool check-config`.
            if rest.contains('@') {
                return err(
                    "servers",
                    "credentials do not belong in a URL: use user/password, token or creds_file",
                );
            }
            if rest.is_empty() || rest.contains(['/', ' ']) {
                return err("servers", &format!("{s:?} is not nats://host:port"));
            }
        }
        if self.user.as_ref().is_some_and(String::is_empty) {
            return err("user", "must not be empty");
        }
        if self.user.is_some() != self.password.is_some() {
            return err("password", "user and password go together");
        }
        if self.password.as_ref().is_some_and(Secret::is_empty) {
            return err("password", "must not be empty");
        }
        if self.token.as_ref().is_some_and(Secret::is_empty) {
            return err("token", "must not be empty");
        }
        let methods = usize::from(self.user.is_some())
            + usize::from(self.token.is_some())
            + usize::from(self.creds_file.is_some());
        if methods > 1 {
            return err("token", "choose one of user/password, token or creds_file");
        }
        if self.stream.is_empty()
            || self.stream.len() > 64
            || !self
                .stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return err("stream", "1-64 characters of letters, digits, '-' or '_'");
        }
        if !self.subject_prefix.split('.').all(valid_token) || self.subject_prefix.len() > 128 {
            return err(
                "subject_prefix",
                "dot-separated tokens of letters, digits, '-' or '_' (no wildcards), at most 128 characters",
            );
        }
        if !(1..=5).contains(&self.replicas) {
            return err("replicas", "must be 1..=5");
        }
        if self.duplicate_window.is_zero() {
            return err("duplicate_window", "must be above zero");
        }
        if !(1..=65_536).contains(&self.max_in_flight) {
            return err("max_in_flight", "must be 1..=65536");
        }
        if self.ack_timeout.is_zero() {
            return err("ack_timeout", "must be above zero");
        }
        if self.read_timeout.is_zero() {
            return err("read_timeout", "must be above zero");
        }
        if !(1..=10_000_000).contains(&self.read_max) {
            return err("read_max", "must be 1..=10000000");
        }
        Ok(())
    }

    pub(crate) fn uses_tls(&self) -> bool {
        self.tls_required
            || self.tls_ca.is_some()
            || self.servers.iter().any(|s| s.starts_with("tls://"))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[server]\nid = 1\n\n[events.jetstream]\nservers = [\"nats://127.0.0.1:4222\", \"nats://127.0.0.1:4223\"]\n";

    fn err(extra: &str) -> String {
        Config::parse(&format!("{BASE}{extra}"), "t.toml")
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn defaults_and_errors_name_the_key_without_secrets() {
        let c = Config::parse(BASE, "t.toml").expect("valid");
        let j = c.events.jetstream.expect("section");
        assert_eq!(j.replicas, 3);
        assert_eq!(j.stream, "EMSPOOL_EVENTS");
        assert_eq!(j.subject_prefix, "emspool.events");
        let c = Config::parse(
            &format!("{BASE}user = \"ems\"\npassword = \"nats-s3cret\"\n"),
            "t.toml",
        )
        .expect("user/password");
        assert!(!format!("{c:?}").contains("nats-s3cret"));

        let e = err("token = \"tok-s3cret\"\nuser = \"u\"\npassword = \"p-s3cret\"\n");
        assert!(e.contains("events.jetstream.token"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = err("user = \"u\"\n");
        assert!(e.contains("events.jetstream.password"), "{e}");
        let e = err("replicas = 0\n");
        assert!(e.contains("events.jetstream.replicas"), "{e}");
        let e = err("subject_prefix = \"ems.*\"\n");
        assert!(e.contains("subject_prefix"), "{e}");
        let e = err("stream = \"a.b\"\n");
        assert!(e.contains("events.jetstream.stream"), "{e}");
        let e = Config::parse(
            "[server]\nid = 1\n[events.jetstream]\nservers = [\"nats://u:pw-s3cret@h:4222\"]\n",
            "t.toml",
        )
        .expect_err("userinfo")
        .to_string();
        assert!(
            e.contains("events.jetstream.servers") && !e.contains("s3cret"),
            "{e}"
        );
        let e = Config::parse(
            "[server]\nid = 1\n[events.jetstream]\nservers = [\"http://h:4222\"]\n",
            "t.toml",
        )
        .expect_err("scheme")
        .to_string();
        assert!(e.contains("nats://"), "{e}");
        assert!(!err("bogus = 1\n").contains('\n'));
    }
}
