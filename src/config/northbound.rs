//! `[alertmanager]` and `[[webhooks]]`: where the pool's alarms are pushed.

use crate::config::Secret;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// Labels every alert carries from the alarm itself; static labels may not replace them.
pub(crate) const ALERT_LABELS: [&str; 4] = ["alertname", "element", "severity", "alarm_key"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertmanagerSection {
    /// Base URLs of every replica of the Alertmanager cluster (`http://am1:9093`): replicas do
    /// not share alerts, so each alert goes to each of them.
    pub(crate) urls: Vec<String>,
    /// Active alerts are sent again this often.
    #[serde(default = "default_resend", with = "humantime_serde")]
    pub(crate) resend: Duration,
    /// Each sent alert ends this far ahead unless sent again (default: 4 x resend): an owner
    /// that dies leaves its successor that long to take over before Alertmanager resolves.
    #[serde(default, with = "humantime_serde")]
    pub(crate) lease: Option<Duration>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    /// Labels added to every alert (`pool = "paris"`).
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    /// Base of each alert's `generatorURL` (the web console); default: this member's URL.
    #[serde(default)]
    pub(crate) console_url: Option<String>,
    /// PEM file of the CA of `https://` Alertmanagers (default: the system's roots).
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookSection {
    /// Names the target in metrics and logs, and its place in the outbox: keep it stable.
    pub(crate) name: String,
    pub(crate) url: String,
    /// Shared secret: each POST carries `X-Emspool-Signature: sha256=<hex HMAC of the body>`.
    #[serde(default)]
    pub(crate) secret: Option<Secret>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    /// Alarm changes waiting for this receiver, at most; older ones are dropped and counted.
    #[serde(default = "default_max_backlog")]
    pub(crate) max_backlog: u64,
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
}

fn default_resend() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_backlog() -> u64 {
    100_000
}

type Invalid = (String, String);

fn check_url(key: &str, url: &str) -> Result<(), Invalid> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err((key.into(), "must start with http:// or https://".into()));
    };
    let authority = rest.split('/').next().unwrap_or("");
    // Userinfo would end up in logs and metric labels.
    if authority.contains('@') {
        return Err((key.into(), "must not hold a user or password".into()));
    }
    if authority.is_empty() || url.contains(char::is_whitespace) {
        return Err((key.into(), format!("{url:?} is not an http(s) URL")));
    }
    Ok(())
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__` reserved.
fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl AlertmanagerSection {
    pub(crate) fn lease(&self) -> Duration {
        self.lease.unwrap_or(self.resend.saturating_mul(4))
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let key = |k: &str| format!("alertmanager.{k}");
        if self.urls.is_empty() {
            return Err((key("urls"), "list every Alertmanager replica".into()));
        }
        for u in &self.urls {
            check_url(&key("urls"), u)?;
        }
        if self.resend < Duration::from_secs(1) {
            return Err((key("resend"), "must be at least 1s".into()));
        }
        if self.lease() < self.resend.saturating_mul(2) {
            return Err((
                key("lease"),
                "must be at least twice resend: one lost send must not resolve an alert".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err((key("timeout"), "must be above zero".into()));
        }
        for (name, value) in &self.labels {
            if !valid_label(name) {
                return Err((key("labels"), format!("{name:?} is not a label name")));
            }
            if ALERT_LABELS.contains(&name.as_str()) {
                return Err((
                    key("labels"),
                    format!("{name:?} is set from the alarm itself"),
                ));
            }
            if value.is_empty() {
                return Err((key("labels"), format!("{name:?} has an empty value")));
            }
        }
        if let Some(u) = &self.console_url {
            check_url(&key("console_url"), u)?;
        }
        Ok(())
    }
}

pub(crate) fn validate_webhooks(hooks: &[WebhookSection]) -> Result<(), Invalid> {
    let mut names = HashSet::new();
    for (i, h) in hooks.iter().enumerate() {
        let key = |k: &str| format!("webhooks[{i}].{k}");
        let valid_name = !h.name.is_empty()
            && h.name.len() <= 64
            && h.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !valid_name {
            return Err((key("name"), "1-64 of A-Z a-z 0-9 - _".into()));
        }
        if !names.insert(h.name.as_str()) {
            return Err((key("name"), format!("{:?} appears twice", h.name)));
        }
        check_url(&key("url"), &h.url)?;
        if h.secret.as_ref().is_some_and(|s| s.expose().len() < 16) {
            return Err((key("secret"), "must be at least 16 characters".into()));
        }
        if h.timeout.is_zero() {
            return Err((key("timeout"), "must be above zero".into()));
        }
        if h.max_backlog == 0 {
            return Err((key("max_backlog"), "must be above zero".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn am(toml: &str) -> AlertmanagerSection {
        toml::from_str(toml).expect("parses")
    }

    #[test]
    fn alertmanager_defaults_and_refusals() {
        let a = am(r#"urls = ["http://127.0.0.1:9093"]"#);
        assert_eq!(a.resend, Duration::from_secs(30));
        assert_eq!(a.lease(), Duration::from_secs(120));
        assert!(a.validate().is_ok());
        let bad = [
            r#"urls = []"#,
            r#"urls = ["127.0.0.1:9093"]"#,
            r#"urls = ["http://u:p@127.0.0.1:9093"]"#,
            r#"urls = ["http://a"]
               resend = "10s"
               lease = "15s""#,
            r#"urls = ["http://a"]
               labels = { severity = "x" }"#,
            r#"urls = ["http://a"]
               labels = { "bad-name" = "x" }"#,
            r#"urls = ["http://a"]
               timeout = "0s""#,
        ];
        for b in bad {
            assert!(am(b).validate().is_err(), "{b}");
        }
    }

    #[test]
    fn webhooks_need_unique_names_and_a_long_secret() {
        let hook = |name: &str, secret: Option<&str>| WebhookSection {
            name: name.into(),
            url: "http://127.0.0.1:9/h".into(),
            secret: secret.map(Secret::new),
            timeout: Duration::from_secs(5),
            max_backlog: 10,
            ca: None,
        };
        assert!(validate_webhooks(&[hook("ops", Some("0123456789abcdef"))]).is_ok());
        assert!(validate_webhooks(&[hook("ops", None), hook("ops", None)]).is_err());
        assert!(validate_webhooks(&[hook("o p", None)]).is_err());
        let short = validate_webhooks(&[hook("ops", Some("short-secret"))]).unwrap_err();
        assert!(!short.1.contains("short-secret"));
    }

    /// The indented block of the README that starts with `first`, dedented.
    fn readme_block(first: &str) -> String {
        let readme = include_str!("../../README.md");
        let start = readme
            .find(&format!("\n    {first}\n"))
            .unwrap_or_else(|| panic!("README has no block {first}"));
        readme[start + 1..]
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.strip_prefix("    ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_readme_examples_are_valid() {
        #[derive(Deserialize)]
        struct Doc {
            alertmanager: AlertmanagerSection,
            webhooks: Vec<WebhookSection>,
        }
        let text = format!(
            "{}\n\n{}",
            readme_block("[alertmanager]"),
            readme_block("[[webhooks]]")
        );
        let doc: Doc = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        doc.alertmanager.validate().expect("alertmanager example");
        validate_webhooks(&doc.webhooks).expect("webhooks example");
        assert_eq!(doc.alertmanager.urls.len(), 2);
    }
}
