//! The TOML configuration file: parsed strictly, validated at load, secrets kept out of output.

mod checks;
mod jetstream;
mod limits;
mod northbound;
pub(crate) mod tls;

use crate::model::{Element, Protocol, ServerId};
pub(crate) use checks::hidden_from_unit;
pub(crate) use jetstream::JetStreamSection;
pub(crate) use northbound::{AlertmanagerSection, WebhookSection};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub(crate) use tls::ClientAuth;

/// Where a bad configuration was found and why; `Display` is the one line an operator sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The io error is part of the message, not a `source`: `{:#}` (anyhow) would print it
    /// twice ("No such file or directory (os error 2): No such file or directory (os error 2)").
    #[error("{file}: cannot read: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// A string that must never reach a log, an error message or an API answer.
#[derive(Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Only the pool's own copy of its credential profiles (the persisted assignment, the peer
/// protocol under the pool secret) serializes a secret; API answers use views without them
/// (`api::credentials`).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    #[serde(default)]
    pub poll: PollSection,
    #[serde(default)]
    pub events: EventsSection,
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    #[serde(default)]
    pub elements: Vec<Element>,
    #[serde(default)]
    pub client: ClientSection,
    /// Absent: a pool of one (this server), master of itself.
    #[serde(default)]
    pub pool: Option<PoolSection>,
    /// Absent: no trap listener (traps forwarded by peers are still applied).
    #[serde(default)]
    pub traps: Option<TrapsSection>,
    /// Absent: alarms are not pushed to Alertmanager.
    #[serde(default)]
    pub(crate) alertmanager: Option<AlertmanagerSection>,
    /// Receivers of a JSON POST per alarm change.
    #[serde(default)]
    pub(crate) webhooks: Vec<WebhookSection>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Shared by every member; peers refuse requests without it.
    pub secret: Secret,
    pub members: Vec<MemberConfig>,
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A peer silent this long is dead.
    #[serde(default = "default_failure_timeout", with = "humantime_serde")]
    pub failure_timeout: Duration,
    /// How long an election waits for a higher id to answer.
    #[serde(default = "default_answer_timeout", with = "humantime_serde")]
    pub answer_timeout: Duration,
    /// A server stops acting on its elements this long after the heartbeat a majority last
    /// answered was sent; at most 90% of failure_timeout, so it has stopped before the
    /// majority can have handed its elements to others.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
    /// A member coming back must stay alive this long before it is given elements again.
    #[serde(default = "default_hold_down", with = "humantime_serde")]
    pub hold_down: Duration,
    /// Lets tests cut this server off from chosen peers through `/peer/v1/fault`.
    #[serde(default)]
    pub fault_injection: bool,
    /// PEM file of the pool CA: set, members authenticate each other with mutual TLS and the
    /// member id in a peer's certificate is the only sender a peer request may claim.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// This member's client certificate and key for mutual TLS; default: `[server] tls_cert`
    /// and `tls_key` (a certificate for both server and client use).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Whether a connection without a pool certificate is refused already in the handshake.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The most election rounds (term epochs) a peer's term may run ahead of this server's;
    /// a larger jump is refused and counted (a hostile or broken member racing the terms).
    #[serde(default = "default_max_term_jump")]
    pub max_term_jump: u64,
    /// The local address this member's peer connections leave from (a multi-homed server, or
    /// one of several members on one host); default: whatever the route picks.
    #[serde(default)]
    pub source_address: Option<std::net::IpAddr>,
}

/// How long after the send instant of a heartbeat that a majority answered nobody can have
/// taken this server's elements over: failure_timeout, less 10% for the clock rates of two
/// machines and a busy scheduler.
pub(crate) fn takeover_after(failure_timeout: Duration) -> Duration {
    failure_timeout.saturating_sub(failure_timeout / 10)
}

fn default_max_term_jump() -> u64 {
    65_536
}

fn default_heartbeat() -> Duration {
    Duration::from_millis(250)
}
fn default_failure_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_answer_timeout() -> Duration {
    Duration::from_millis(150)
}
fn default_lease() -> Duration {
    Duration::from_millis(800)
}
fn default_hold_down() -> Duration {
    Duration::from_secs(3)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: u32,
    /// Base URL of the member's HTTP listener, e.g. `http://10.0.0.2:8780`.
    pub url: String,
    /// Capacity relative to the other members (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub id: u32,
    /// HTTP API and peer protocol address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `tracing` filter (e.g. `info`, `emspool=debug`); `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `text` or `json`; under systemd, `text` becomes journald's format (see `logging`).
    #[serde(default)]
    pub log_format: LogFormat,
    /// PEM certificate chain and private key: set, the listener (API and peer protocol)
    /// speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// A connection must send a whole request head within this (from its first byte, or from
    /// connecting for its first request), else it is closed.
    #[serde(default = "limits::default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request body must arrive whole within this after its head.
    #[serde(default = "limits::default_body_timeout", with = "humantime_serde")]
    pub body_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this.
    #[serde(default = "limits::default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Client connections (API, console, metrics) open at once on the listener.
    #[serde(default = "limits::default_max_connections")]
    pub max_connections: usize,
    /// Pool members' connections (`/peer/v1`) open at once, counted apart so that clients
    /// can never crowd the pool protocol out.
    #[serde(default = "limits::default_max_peer_connections")]
    pub max_peer_connections: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8780))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/emspool")
}
fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PollSection {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Per request; a poll makes several requests.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retries: u32,
    pub max_repetitions: u32,
    /// Polls in flight at once, whatever the number of elements.
    pub concurrency: usize,
    /// NETCONF sessions (`[poll.netconf]`).
    pub netconf: NetconfSection,
    /// Name servers for element names, in resolv.conf format (default `/etc/resolv.conf`);
    /// `/etc/hosts` is read first. Each lookup waits at most `timeout`.
    pub resolv_conf: Option<PathBuf>,
}

/// How NETCONF elements are polled. SSH (libssh2) is blocking: its work runs on `threads`
/// dedicated threads; idle sessions hold no thread. Every read waits at most `poll.timeout`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetconfSection {
    /// Threads doing SSH work (connect, RPCs) for all NETCONF elements of this server.
    pub threads: usize,
    /// A reply (or notification) larger than this is refused and the session dropped.
    pub max_reply_bytes: usize,
    /// Subscribe to notifications (RFC 5277) on a second session per element.
    pub notifications: bool,
    /// SSH keepalive on notification sessions; `0s` disables.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
    /// Upper bound of the notification session's reconnect backoff (it starts at 1 s).
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
}

impl Default for NetconfSection {
    fn default() -> Self {
        NetconfSection {
            threads: 8,
            max_reply_bytes: 16 << 20,
            notifications: true,
            keepalive: Duration::from_secs(30),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

impl Default for PollSection {
    fn default() -> Self {
        PollSection {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
            retries: 1,
            max_repetitions: 10,
            concurrency: 256,
            netconf: NetconfSection::default(),
            resolv_conf: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Events older than this are deleted; `0s` keeps them forever.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// `[events.jetstream]`: also publish every event to NATS JetStream (absent: redb only).
    pub(crate) jetstream: Option<JetStreamSection>,
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            retention: Duration::from_secs(30 * 24 * 3600),
            jetstream: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Bearer token for the client API; none means the API is open (loopback labs, demo).
    pub token: Option<Secret>,
    /// Also require the token on /metrics (Prometheus then needs `authorization` set).
    pub protect_metrics: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSection {
    pub servers: Vec<String>,
    pub token: Option<Secret>,
    /// PEM CA the CLI trusts for https servers (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// Client certificate and key, for a pool with `client_auth = "required"`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A credential profile. `version` picks the kind: `v2c` and `v3` for SNMP, `netconf` for
/// NETCONF over SSH.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(tag = "version", rename_all = "lowercase", deny_unknown_fields)]
pub enum Credential {
    V2c {
        community: Secret,
    },
    V3 {
        user: String,
        #[serde(default)]
        auth_protocol: Option<AuthProtocol>,
        #[serde(default)]
        auth_password: Option<Secret>,
        #[serde(default)]
        priv_protocol: Option<PrivProtocol>,
        #[serde(default)]
        priv_password: Option<Secret>,
    },
    Netconf(NetconfCredential),
}

impl Credential {
    pub fn is_netconf(&self) -> bool {
        matches!(self, Credential::Netconf(_))
    }
}

/// SSH login for NETCONF (RFC 6242): a user with a password and/or a private key, and how
/// the device's host key is checked. Exactly one host-key check must be chosen:
/// `known_hosts` (an OpenSSH known_hosts file), `host_key_sha256` (the fingerprint as
/// `ssh-keygen -lf` prints it, `SHA256:...`), or `insecure_accept_any_host_key = true`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetconfCredential {
    pub user: String,
    #[serde(default)]
    pub password: Option<Secret>,
    /// OpenSSH or PEM private key file; tried before the password when both are set.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    #[serde(default)]
    pub private_key_passphrase: Option<Secret>,
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub host_key_sha256: Option<String>,
    /// Accepts any host key (open to man-in-the-middle); only for labs, never a default.
    #[serde(default)]
    pub insecure_accept_any_host_key: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthProtocol {
    Md5,
    Sha,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PrivProtocol {
    Des,
    Aes,
    Aes192,
    Aes256,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: file.clone(),
            error,
        })?;
        Config::parse(&text, &file)
    }

    /// `file` names the source in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| syntax_error(text, file, &e))?;
        config.validate(file)?;
        Ok(config)
    }

    pub fn server_id(&self) -> ServerId {
        ServerId(self.server.id)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if self.server.id == 0 {
            return Err(invalid("server.id", "must be a positive integer"));
        }
        if let Err(e) = validate_level(&self.server.log_level) {
            return Err(invalid(
                "server.log_level",
                &format!("not a tracing filter: {}", e.replace('\n', " ")),
            ));
        }
        limits::validate(&self.server).map_err(|(k, m)| invalid(&k, &m))?;
        let p = &self.poll;
        if p.interval < Duration::from_secs(1) {
            return Err(invalid("poll.interval", "must be at least 1s"));
        }
        if p.timeout.is_zero() || p.timeout > p.interval {
            return Err(invalid(
                "poll.timeout",
                "must be above zero and at most poll.interval",
            ));
        }
        if p.retries > 10 {
            return Err(invalid("poll.retries", "must be at most 10"));
        }
        if !(1..=1000).contains(&p.max_repetitions) {
            return Err(invalid("poll.max_repetitions", "must be 1..=1000"));
        }
        if p.concurrency == 0 {
            return Err(invalid("poll.concurrency", "must be at least 1"));
        }
        if !(1..=1024).contains(&p.netconf.threads) {
            return Err(invalid("poll.netconf.threads", "must be 1..=1024"));
        }
        if p.netconf.max_reply_bytes < 4096 {
            return Err(invalid(
                "poll.netconf.max_reply_bytes",
                "must be at least 4096",
            ));
        }
        if p.netconf.reconnect_max < Duration::from_secs(1) {
            return Err(invalid("poll.netconf.reconnect_max", "must be at least 1s"));
        }
        checks::tokens(&self.api, &self.client).map_err(|(k, m)| invalid(&k, &m))?;
        if let Some(pool) = &self.pool {
            validate_pool(pool, self.server.id).map_err(|(k, m)| invalid(&k, &m))?;
        }
        tls::validate(&self.server, self.pool.as_ref(), &self.client)
            .map_err(|(k, m)| invalid(&k, &m))?;
        for (name, cred) in &self.credentials {
            validate_credential(name, cred).map_err(|(k, m)| invalid(&k, &m))?;
        }
        validate_elements(&self.elements, &self.credentials).map_err(|(k, m)| invalid(&k, &m))?;
        checks::pins(self).map_err(|(k, m)| invalid(&k, &m))?;
        checks::ports(self).map_err(|(k, m)| invalid(&k, &m))?;
        if let Some(t) = &self.traps {
            validate_traps(t).map_err(|(k, m)| invalid(&k, &m))?;
        }
        if let Some(j) = &self.events.jetstream {
            j.validate().map_err(|(k, m)| invalid(&k, &m))?;
        }
        if let Some(a) = &self.alertmanager {
            a.validate().map_err(|(k, m)| invalid(&k, &m))?;
        }
        northbound::validate_webhooks(&self.webhooks).map_err(|(k, m)| invalid(&k, &m))?;
        Ok(())
    }
}

fn validate_pool(p: &PoolSection, me: u32) -> Result<(), (String, String)> {
    let err = |k: &str, m: &str| Err((format!("pool.{k}"), m.to_owned()));
    if p.secret.expose().len() < 8 {
        return err("secret", "must be at least 8 characters");
    }
    let mut ids = HashSet::new();
    for m in &p.members {
        if m.id == 0 || !ids.insert(m.id) {
            return err("members.id", &format!("{} is zero or appears twice", m.id));
        }
        if !(m.url.starts_with("http://") || m.url.starts_with("https://")) {
            return err("members.url", &format!("{:?} is not an http(s) URL", m.url));
        }
    }
    if !ids.contains(&me) {
        return err(
            "members",
            &format!("server.id {me} is not listed as a member"),
        );
    }
    if p.heartbeat.is_zero() || p.heartbeat * 2 > p.failure_timeout {
        return err(
            "heartbeat",
            "must be above zero and at most half of failure_timeout",
        );
    }
    // The lease runs from the send instant of a heartbeat the majority answered; the majority
    // keeps us alive for failure_timeout from that instant or later. Our lease must end first,
    // with room for clock rates and scheduling (docs/ARCHITECTURE.md, "Lease").
    let takeover = takeover_after(p.failure_timeout);
    if p.lease > takeover || p.lease < p.heartbeat {
        return err(
            "lease",
            &format!(
                "must be at least heartbeat and at most failure_timeout minus 10% ({takeover:?}): \
                 a cut-off server must stop before the majority takes its elements over"
            ),
        );
    }
    if p.answer_timeout.is_zero() {
        return err("answer_timeout", "must be above zero");
    }
    Ok(())
}

pub(crate) fn validate_credential(name: &str, cred: &Credential) -> Result<(), (String, String)> {
    let key = |k: &str| format!("credentials.{name}.{k}");
    match cred {
        Credential::V2c { community } => {
            if community.is_empty() {
                return Err((key("community"), "must not be empty".into()));
            }
        }
        Credential::V3 {
            user,
            auth_protocol,
            auth_password,
            priv_protocol,
            priv_password,
        } => {
            if user.is_empty() {
                return Err((key("user"), "must not be empty".into()));
            }
            // RFC 3414 key localisation needs at least 8 characters; agents reject shorter ones.
            let short = |p: &Option<Secret>| p.as_ref().is_some_and(|s| s.expose().len() < 8);
            if auth_protocol.is_some() != auth_password.is_some() {
                return Err((
                    key("auth_password"),
                    "auth_protocol and auth_password go together".into(),
                ));
            }
            if short(auth_password) {
                return Err((key("auth_password"), "must be at least 8 characters".into()));
            }
            if priv_protocol.is_some() != priv_password.is_some() {
                return Err((
                    key("priv_password"),
                    "priv_protocol and priv_password go together".into(),
                ));
            }
            if priv_protocol.is_some() && auth_protocol.is_none() {
                return Err((
                    key("priv_protocol"),
                    "privacy needs authentication (set auth_protocol)".into(),
                ));
            }
            if short(priv_password) {
                return Err((key("priv_password"), "must be at least 8 characters".into()));
            }
        }
        Credential::Netconf(nc) => validate_netconf_credential(nc).map_err(|(k, m)| (key(k), m))?,
    }
    Ok(())
}

fn validate_netconf_credential(c: &NetconfCredential) -> Result<(), (&'static str, String)> {
    if c.user.is_empty() {
        return Err(("user", "must not be empty".into()));
    }
    if c.password.as_ref().is_some_and(Secret::is_empty) {
        return Err(("password", "must not be empty".into()));
    }
    if c.password.is_none() && c.private_key.is_none() {
        return Err(("password", "set password or private_key (or both)".into()));
    }
    if c.private_key_passphrase.is_some() && c.private_key.is_none() {
        return Err(("private_key_passphrase", "needs private_key".into()));
    }
    let checks = usize::from(c.known_hosts.is_some())
        + usize::from(c.host_key_sha256.is_some())
        + usize::from(c.insecure_accept_any_host_key);
    if checks != 1 {
        return Err((
            "known_hosts",
            "choose exactly one host-key check: known_hosts, host_key_sha256, or insecure_accept_any_host_key = true".into(),
        ));
    }
    if let Some(fp) = &c.host_key_sha256
        && crate::fingerprint::parse_sha256_fingerprint(fp).is_none()
    {
        return Err((
            "host_key_sha256",
            format!(
                "{fp:?} is not a SHA-256 fingerprint like \"SHA256:<43 base64 characters>\" (ssh-keygen -lf)"
            ),
        ));
    }
    Ok(())
}

/// The checks of an element that need no credential profile: name, address, interval.
pub(crate) fn validate_element_fields(e: &Element) -> Result<(), (String, String)> {
    let key = |k: &str| format!("elements[{}].{k}", e.name);
    if e.name.is_empty()
        || e.name.len() > 128
        || !e
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err((
            "elements.name".into(),
            format!(
                "{:?}: 1-128 characters of letters, digits, '-', '_' or '.'",
                e.name
            ),
        ));
    }
    if !valid_host_port(&e.address) {
        return Err((
            key("address"),
            format!("{:?} is not host:port (port 1-65535)", e.address),
        ));
    }
    if let Some(i) = e.interval
        && i < Duration::from_secs(1)
    {
        return Err((key("interval"), "must be at least 1s".into()));
    }
    Ok(())
}

/// Checks one element definition; also used for elements added through the API.
pub(crate) fn validate_element(
    e: &Element,
    credentials: &BTreeMap<String, Credential>,
) -> Result<(), (String, String)> {
    validate_element_fields(e)?;
    validate_element_credential(e, credentials)
}

/// Whether `credentials` (the file's, or the pool's on the master) has the element's profile,
/// of the element's protocol.
pub(crate) fn validate_element_credential(
    e: &Element,
    credentials: &BTreeMap<String, Credential>,
) -> Result<(), (String, String)> {
    let key = |k: &str| format!("elements[{}].{k}", e.name);
    if !credentials.contains_key(&*e.credential) {
        return Err((
            key("credential"),
            format!("no credential profile named {:?}", e.credential),
        ));
    }
    let netconf_credential = credentials
        .get(&*e.credential)
        .is_some_and(Credential::is_netconf);
    match e.protocol {
        Protocol::Netconf if !netconf_credential => {
            return Err((
                key("credential"),
                format!(
                    "{:?} is an SNMP profile; protocol = \"netconf\" needs version = \"netconf\"",
                    e.credential
                ),
            ));
        }
        Protocol::Snmp if netconf_credential => {
            return Err((
                key("credential"),
                format!(
                    "{:?} is a NETCONF profile; set protocol = \"netconf\" or use an SNMP profile",
                    e.credential
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn validate_elements(
    elements: &[Element],
    credentials: &BTreeMap<String, Credential>,
) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for e in elements {
        validate_element(e, credentials)?;
        if !names.insert(&*e.name) {
            return Err((
                "elements.name".into(),
                format!("{:?} appears twice", e.name),
            ));
        }
    }
    Ok(())
}

fn valid_host_port(s: &str) -> bool {
    if let Ok(a) = s.parse::<SocketAddr>() {
        // Port 0 parses but no agent answers there: a typo, not an address.
        return a.port() != 0;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
        }
        None => false,
    }
}

/// `[traps]`: the SNMP trap and inform listener (see `poll::traps`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrapsSection {
    /// `false` keeps the section but opens no socket.
    pub enabled: bool,
    /// UDP address to receive on; 162 needs root or CAP_NET_BIND_SERVICE.
    pub listen: SocketAddr,
    /// v1/v2c communities accepted; empty accepts any.
    pub communities: Vec<Secret>,
    /// Datagrams queued between the socket and the decoder; when full the socket task waits and
    /// the kernel buffer (`recv_buffer`) absorbs the burst.
    pub queue: usize,
    /// SO_RCVBUF in bytes; the kernel caps it at net.core.rmem_max unless run as root.
    pub recv_buffer: usize,
    /// Reboot alarms raised by coldStart/warmStart clear after this.
    #[serde(with = "humantime_serde")]
    pub reboot_clear: Duration,
    /// AuthFailure alarms raised by authenticationFailure traps clear after this.
    #[serde(with = "humantime_serde")]
    pub auth_failure_clear: Duration,
    /// A linkDown followed by linkUp of the same interface within this window is one
    /// `link.flap` event instead of an alarm; the LinkDown alarm waits this long. 0s disables.
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
    /// Other (unmapped) traps also raise an indeterminate alarm per trap OID.
    pub other_alarms: bool,
    /// Those alarms clear after this.
    #[serde(with = "humantime_serde")]
    pub other_clear: Duration,
    /// Attribute a trap to the address in snmpTrapAddress.0 or the v1 agent-addr when present
    /// (traps relayed by a proxy); otherwise only the UDP source address counts.
    pub trust_agent_address: bool,
    /// Sender address -> element name, for agents that send from another address than the
    /// one polled, or several elements sharing one address.
    pub sources: BTreeMap<std::net::IpAddr, String>,
    /// Traps for another server's elements are forwarded in batches of at most this many...
    pub forward_batch: usize,
    /// ...or after at most this long.
    #[serde(with = "humantime_serde")]
    pub forward_interval: Duration,
    /// This server's SNMPv3 engine id (hex), authoritative for v3 informs sent to it; default
    /// `80007ed904` + "emspool-<server id>". Inform senders' users are `v3_users` entries with
    /// this engine id (their keys are localized to it).
    pub engine_id: Option<String>,
    /// SNMPv3 users whose traps (and informs) are accepted.
    pub v3_users: Vec<TrapUser>,
}

impl Default for TrapsSection {
    fn default() -> Self {
        TrapsSection {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 162)),
            communities: Vec::new(),
            queue: 65_536,
            recv_buffer: 8 << 20,
            reboot_clear: Duration::from_secs(600),
            auth_failure_clear: Duration::from_secs(3600),
            flap_window: Duration::ZERO,
            other_alarms: false,
            other_clear: Duration::from_secs(3600),
            trust_agent_address: false,
            sources: BTreeMap::new(),
            forward_batch: 500,
            forward_interval: Duration::from_millis(50),
            engine_id: None,
            v3_users: Vec::new(),
        }
    }
}

/// One USM user of one sending engine: for traps the sender is authoritative, so its keys are
/// localized with the sender's engine id.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrapUser {
    pub user: String,
    /// The sender's snmpEngineID in hex (`80001f88...`, an optional `0x` prefix is allowed).
    pub engine_id: String,
    #[serde(default)]
    pub auth_protocol: Option<AuthProtocol>,
    #[serde(default)]
    pub auth_password: Option<Secret>,
    #[serde(default)]
    pub priv_protocol: Option<PrivProtocol>,
    #[serde(default)]
    pub priv_password: Option<Secret>,
}

impl TrapUser {
    /// The engine id as bytes; `None` when it is not even-length hex of 5..=32 bytes.
    pub fn engine_id_bytes(&self) -> Option<Vec<u8>> {
        parse_engine_id(&self.engine_id)
    }

    /// The same checks as a v3 credential profile.
    pub fn as_credential(&self) -> Credential {
        Credential::V3 {
            user: self.user.clone(),
            auth_protocol: self.auth_protocol,
            auth_password: self.auth_password.clone(),
            priv_protocol: self.priv_protocol,
            priv_password: self.priv_password.clone(),
        }
    }
}

/// An SNMP engine id in hex (optional `0x`), 5 to 32 bytes (RFC 3411).
pub fn parse_engine_id(text: &str) -> Option<Vec<u8>> {
    let h = text.trim();
    let h = h
        .strip_prefix("0x")
        .or_else(|| h.strip_prefix("0X"))
        .unwrap_or(h);
    if h.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    bytes.filter(|b| (5..=32).contains(&b.len()))
}

fn validate_traps(t: &TrapsSection) -> Result<(), (String, String)> {
    let err = |k: &str, m: &str| Err((format!("traps.{k}"), m.to_owned()));
    if t.queue == 0 {
        return err("queue", "must be at least 1");
    }
    if t.forward_batch == 0 {
        return err("forward_batch", "must be at least 1");
    }
    if t.forward_interval.is_zero() {
        return err("forward_interval", "must be above zero");
    }
    if let Some(e) = &t.engine_id
        && parse_engine_id(e).is_none()
    {
        return err("engine_id", "must be 5 to 32 bytes in hex");
    }
    if t.communities.iter().any(Secret::is_empty) {
        return err("communities", "must not contain an empty community");
    }
    let mut seen = HashSet::new();
    for (i, u) in t.v3_users.iter().enumerate() {
        let Some(engine) = u.engine_id_bytes() else {
            return err(
                &format!("v3_users[{i}].engine_id"),
                "must be 5 to 32 bytes in hex",
            );
        };
        if !seen.insert((u.user.clone(), engine)) {
            return err(&format!("v3_users[{i}]"), "user and engine_id appear twice");
        }
        validate_credential(&format!("v3_users[{i}]"), &u.as_credential())
            .map_err(|(k, m)| (k.replacen("credentials.", "traps.", 1), m))?;
    }
    Ok(())
}

/// One line with the position; the toml snippet is left out because it may quote a secret.
fn syntax_error(text: &str, file: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .unwrap_or(0);
    // Name the key from the line's `key =` prefix, never from the span: a type error's span is
    // the value, which may be a secret.
    let key = e
        .span()
        .and_then(|s| {
            let start = text[..s.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            text[start..].lines().next()
        })
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| format!("`{}`: ", k.trim()))
        .unwrap_or_default();
    // Values of secrets can only be quoted by type errors; those name the type, not the text.
    let message = e.message().replace('\n', " ");
    ConfigError::Syntax {
        file: file.to_owned(),
        line,
        message: format!("{key}{message}"),
    }
}

/// Whether `level` is a `tracing` filter (`info`, `info,emspool=debug`, ...).
pub(crate) fn validate_level(level: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
id = 1
data_dir = "/tmp/x"

[credentials.lab]
version = "v2c"
community = "s3cr3t-community"

[credentials.v3]
version = "v3"
user = "authuser"
auth_protocol = "sha"
auth_password = "authpass123"
priv_protocol = "aes"
priv_password = "privpass123"

[[elements]]
name = "r1"
address = "127.0.0.1:1161"
credential = "lab"
interval = "30s"
"#;

    #[test]
    fn good_config_loads_with_defaults() {
        let c = Config::parse(GOOD, "t.toml").expect("valid");
        assert_eq!(c.server_id(), ServerId(1));
        assert_eq!(c.poll.max_repetitions, 10);
        assert_eq!(c.elements[0].interval, Some(Duration::from_secs(30)));
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "secrets leak in Debug"
        );
    }

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml")
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("[server]\nid = 1\nbogus = 2\n");
        assert!(e.starts_with("t.toml:3:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let e = err(&GOOD.replace("credential = \"lab\"", "credential = \"nope\""));
        assert!(e.contains("elements[r1].credential"), "{e}");
        let e = err(&GOOD.replace("authpass123", "short"));
        assert!(e.contains("credentials.v3.auth_password"), "{e}");
        assert!(!e.contains("short"), "{e}");
        let e = err(&GOOD.replace("127.0.0.1:1161", "nowhere"));
        assert!(e.contains("address"), "{e}");
        let e = err(&GOOD.replace("id = 1", "id = 0"));
        assert!(e.contains("server.id"), "{e}");
    }

    #[test]
    fn type_error_does_not_quote_secret_text() {
        let e = err(&GOOD.replace("\"s3cr3t-community\"", "[\"s3cr3t-community\"]"));
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn duplicate_element_is_refused() {
        let dup = format!(
            "{GOOD}\n[[elements]]\nname = \"r1\"\naddress = \"h:1\"\ncredential = \"lab\"\n"
        );
        assert!(err(&dup).contains("appears twice"));
    }

    const NETCONF: &str = r#"
[server]
id = 1

[poll.netconf]
threads = 4
max_reply_bytes = 1048576

[credentials.nc]
version = "netconf"
user = "admin"
password = "nc-s3cret"
host_key_sha256 = "SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

[credentials.v2]
version = "v2c"
community = "public"

[[elements]]
name = "ne1"
address = "127.0.0.1:830"
protocol = "netconf"
credential = "nc"
"#;

    #[test]
    fn netconf_credentials_and_elements() {
        let c = Config::parse(NETCONF, "t.toml").expect("valid");
        assert_eq!(c.poll.netconf.threads, 4);
        assert!(c.poll.netconf.notifications);
        let Credential::Netconf(nc) = &c.credentials["nc"] else {
            panic!("not netconf");
        };
        assert_eq!(nc.user, "admin");
        assert!(!format!("{c:?}").contains("nc-s3cret"), "secret leaks");
        // Protocol and profile must agree, both ways.
        let e = err(&NETCONF.replace("credential = \"nc\"", "credential = \"v2\""));
        assert!(
            e.contains("elements[ne1].credential") && e.contains("SNMP profile"),
            "{e}"
        );
        let e = err(&NETCONF.replace("protocol = \"netconf\"\n", ""));
        assert!(e.contains("NETCONF profile"), "{e}");
        // Exactly one host-key check; insecure only when said.
        let e = err(&NETCONF.replace("host_key_sha256 = ", "# "));
        assert!(
            e.contains("credentials.nc.known_hosts") && e.contains("exactly one"),
            "{e}"
        );
        let both = NETCONF.replace(
            "host_key_sha256",
            "insecure_accept_any_host_key = true\nhost_key_sha256",
        );
        assert!(err(&both).contains("exactly one"));
        let insecure = NETCONF.replace(
            "host_key_sha256 = \"SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"",
            "insecure_accept_any_host_key = true",
        );
        Config::parse(&insecure, "t.toml").expect("insecure when explicit");
        let e = err(&NETCONF.replace("SHA256:AAEC", "SHA256:xx"));
        assert!(e.contains("host_key_sha256"), "{e}");
        let e = err(&NETCONF.replace("password = \"nc-s3cret\"", ""));
        assert!(e.contains("credentials.nc.password"), "{e}");
        let e = err(&NETCONF.replace("user = \"admin\"", "user = \"admin\"\nbogus = 1"));
        assert!(e.contains("bogus"), "{e}");
        let e = err(&NETCONF.replace("threads = 4", "threads = 0"));
        assert!(e.contains("poll.netconf.threads"), "{e}");
    }

    #[test]
    fn traps_section_defaults_users_and_errors() {
        let c = Config::parse(GOOD, "t.toml").expect("valid");
        assert!(c.traps.is_none(), "no [traps]: no listener");
        let t = format!(
            "{GOOD}\n[traps]\nlisten = \"127.0.0.1:10162\"\nflap_window = \"5s\"\n\
             [traps.sources]\n\"127.0.0.9\" = \"r1\"\n\
             [[traps.v3_users]]\nuser = \"u\"\nengine_id = \"0x8000000001020304\"\n\
             auth_protocol = \"sha\"\nauth_password = \"authpass123\"\n\
             priv_protocol = \"aes\"\npriv_password = \"trappriv123\"\n"
        );
        let c = Config::parse(&t, "t.toml").expect("valid traps");
        let traps = c.traps.expect("section");
        assert!(traps.enabled);
        assert_eq!(traps.flap_window, Duration::from_secs(5));
        assert_eq!(traps.reboot_clear, Duration::from_secs(600));
        assert_eq!(
            traps.v3_users[0].engine_id_bytes(),
            Some(vec![0x80, 0, 0, 0, 1, 2, 3, 4])
        );
        assert!(!format!("{traps:?}").contains("trappriv123"));
        let e = err(&t.replace("0x8000000001020304", "80zz"));
        assert!(e.contains("traps.v3_users[0].engine_id"), "{e}");
        let e = err(&t.replace("trappriv123", "short"));
        assert!(e.contains("traps.v3_users[0].priv_password"), "{e}");
        let e = err(&format!("{GOOD}\n[traps]\nqueue = 0\n"));
        assert!(e.contains("traps.queue"), "{e}");
    }
    const SHIPPED: &str = include_str!("../../packaging/emspool.toml");

    #[test]
    fn shipped_example_config_is_valid() {
        let c = Config::parse(SHIPPED, "packaging/emspool.toml").expect("example config");
        // The installed default: loopback, the package's state dir, nothing to poll.
        assert_eq!(c.server.listen, default_listen());
        assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/emspool"));
        assert!(
            c.elements.is_empty(),
            "the default config must poll nothing"
        );
        assert!(c.credentials.is_empty());
        assert!(c.pool.is_none());
        assert!(c.api.token.is_none());
        assert_eq!(c.server.log_format, LogFormat::Text);
    }

    /// Every commented-out setting (`#key = ...`, `#[table]`) is valid once uncommented.
    #[test]
    fn shipped_config_examples_are_valid_when_uncommented() {
        let text: String = SHIPPED
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c != ' ' && c != '#') => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = Config::parse(&text, "uncommented").expect("uncommented examples");
        assert_eq!(c.elements.len(), 3);
        assert_eq!(c.credentials.len(), 3);
        assert!(c.credentials["lab-nc"].is_netconf());
        assert_eq!(c.pool.as_ref().map(|p| p.members.len()), Some(3));
        assert!(c.api.token.is_some());
        assert!(c.client.token.is_some());
    }

    #[test]
    fn log_format_and_level_are_checked() {
        let c = Config::parse("[server]\nid = 1\nlog_format = \"json\"\n", "t.toml").unwrap();
        assert_eq!(c.server.log_format, LogFormat::Json);
        let e = err("[server]\nid = 1\nlog_format = \"xml\"\n");
        assert!(e.starts_with("t.toml:3:"), "{e}");
        let e = err("[server]\nid = 1\nlog_level = \"emspool=loud\"\n");
        assert!(e.contains("server.log_level"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
