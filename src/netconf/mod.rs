//! NETCONF over SSH (RFC 6241, RFC 6242): polling and notifications.
//!
//! Threads: libssh2 is blocking, so all SSH work (connect, hello, RPCs, close) runs on a fixed
//! pool of `poll.netconf.threads` dedicated threads fed by a channel; the tokio side awaits a
//! oneshot. Idle sessions hold no thread: a poll session waits in its element's slot between
//! polls, and every subscribed (notification) session is read by one reactor thread that
//! never blocks ([`notify::Reactor`]). A hung device costs one worker for at most the bounded
//! time of its reads (`poll.timeout` each, the poll interval overall); the next poll of that
//! element finds its slot busy and reports the element down at once.
//!
//! Sessions: the poll session is kept open between polls and reused; a reused session that
//! turns out dead (EOF, broken pipe) is replaced at once in the same poll, so a device restart
//! does not look like an outage. After a failure the next attempt is the next poll (the
//! interval is the poll session's backoff). The notification session reconnects with
//! exponential backoff from 1 s to `poll.netconf.reconnect_max`, and at once when a poll of
//! the element succeeds.
//!
//! Configuration:
//!
//! ```toml
//! [poll.netconf]                  # defaults shown
//! threads = 8                     # SSH worker threads for all NETCONF elements
//! max_reply_bytes = 16777216      # larger replies are refused (element unknown, reason)
//! notifications = true            # a second session per element with <create-subscription>
//! keepalive = "30s"               # SSH keepalive on notification sessions
//! reconnect_max = "60s"           # cap of the notification reconnect backoff
//!
//! [credentials.lab-nc]
//! version = "netconf"
//! user = "admin"
//! password = "secret"             # and/or private_key = "/etc/emspool/id_ed25519"
//! known_hosts = "/etc/emspool/known_hosts"   # or host_key_sha256 = "SHA256:...",
//!                                            # or insecure_accept_any_host_key = true
//!
//! [[elements]]
//! name = "ne-1"
//! address = "10.0.0.1:830"
//! protocol = "netconf"
//! credential = "lab-nc"
//! ```

pub mod data;
pub mod framing;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod fuzz;
pub(crate) mod notify;
pub mod session;
pub mod xml;

use crate::config::{Credential, NetconfCredential, NetconfSection};
use crate::model::Outcome;
use crate::model::PollData;
use crate::model::{Element, Protocol};
use framing::FramingError;
use notify::{Delivery, Reactor};
use session::{NotificationStream, Session, Target};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError, Weak, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};
use xml::XmlError;

/// Why a NETCONF operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NcError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("SSH: {0}")]
    Ssh(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("the device closed the session")]
    Closed,
    #[error("SSH authentication failed: {0}")]
    Auth(String),
    #[error("host key rejected: {0}")]
    HostKey(String),
    #[error("{0}")]
    Config(String),
    #[error("framing: {0}")]
    Framing(#[from] FramingError),
    #[error("{0}")]
    Xml(#[from] XmlError),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("rpc-error: {0}")]
    Rpc(String),
    #[error("the device does not support notifications (no :notification:1.0 capability)")]
    NotSupported,
    #[error("the previous poll of this element is still running (device hangs?)")]
    Busy,
    #[error("the NETCONF worker threads are gone")]
    Stopped,
    /// This server is out of descriptors or buffers (`model::starved`): not the device's fault.
    #[error("{0}")]
    Starved(String),
}

impl NcError {
    /// True when the device is to blame (down); false when our side is (unknown): the
    /// credential, the host key, our reply size cap, or a refused operation.
    pub fn device_unreachable(&self) -> bool {
        match self {
            NcError::Connect(_)
            | NcError::Ssh(_)
            | NcError::Timeout(_)
            | NcError::Closed
            | NcError::Xml(_)
            | NcError::Protocol(_)
            | NcError::Busy => true,
            NcError::Framing(f) => !matches!(f, FramingError::TooLarge { .. }),
            NcError::Auth(_)
            | NcError::HostKey(_)
            | NcError::Config(_)
            | NcError::Rpc(_)
            | NcError::NotSupported
            | NcError::Stopped
            | NcError::Starved(_) => false,
        }
    }

    /// The session is still usable after this error.
    fn keeps_session(&self) -> bool {
        matches!(self, NcError::Rpc(_))
    }

    /// A reused session that fails like this was probably closed while idle: reconnect.
    fn stale_session(&self) -> bool {
        matches!(self, NcError::Closed | NcError::Ssh(_))
    }
}

// ---------------------------------------------------------------------------------------------
// Host-key fingerprints (`SHA256:` + unpadded base64, as `ssh-keygen -lf` prints them)

// ---------------------------------------------------------------------------------------------
// Worker threads

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads for blocking SSH work. Clones share the pool; the threads end when
/// the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Workers {
    tx: mpsc::Sender<Job>,
}

impl Workers {
    pub(crate) fn start(threads: usize) -> Workers {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("netconf-{i}"))
                .stack_size(512 * 1024)
                .spawn(move || {
                    loop {
                        let job = {
                            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                            guard.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start NETCONF worker thread {i}: {e}");
            }
        }
        Workers { tx }
    }

    pub(crate) fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        let _ = self.tx.send(Box::new(f));
    }

    /// Runs `f` on a worker; None if the pool is gone.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.spawn(move || {
            let _ = tx.send(f());
        });
        rx.await.ok()
    }
}

// ---------------------------------------------------------------------------------------------
// The client

/// What the NETCONF side needs from the poller.
pub trait Host: Send + Sync {
    fn credential(&self, name: &str) -> Option<Credential>;
    /// Applies what a notification of `element` means (events, alarms, link states);
    /// `own(session_id)` says whether a session is one of this server's.
    fn notified(&self, element: &str, n: &xml::Notification, own: &dyn Fn(u32) -> bool);
}

/// A poll session waiting between polls, with what it was opened for.
#[derive(Default)]
struct Slot {
    key: u64,
    session: Option<Session>,
}

struct NotifTask {
    element: Element,
    handle: tokio::task::JoinHandle<()>,
    signals: Arc<Signals>,
}

/// From the polls of an element to its notification task.
#[derive(Default)]
struct Signals {
    /// Notified after every successful poll.
    wake: Notify,
    /// When a poll last found the device gone (a failed poll, or a kept session that had
    /// died): a subscription made before that is likely dead too, even if its TCP connection
    /// still stands (an sshd child can outlive the NETCONF server behind it).
    last_failure: Mutex<Option<Instant>>,
}

/// Our own session ids per element (their session-start/end notifications are noise).
type OwnSessions = Arc<Mutex<HashMap<Arc<str>, VecDeque<u32>>>>;
const OWN_SESSIONS_KEPT: usize = 8;

struct Inner {
    settings: NetconfSection,
    /// Bound of each blocking step.
    timeout: Duration,
    workers: Workers,
    reactor: Reactor,
    own: OwnSessions,
    host: OnceLock<Weak<dyn Host>>,
    next_stream: AtomicU64,
    subscribed: std::sync::atomic::AtomicUsize,
}

/// All NETCONF sessions of one server.
pub struct NetconfClient {
    inner: Arc<Inner>,
    slots: Mutex<HashMap<Arc<str>, Arc<Mutex<Slot>>>>,
    tasks: Mutex<HashMap<Arc<str>, NotifTask>>,
}

impl Drop for NetconfClient {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, t) in tasks.drain() {
            t.handle.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn remember_session(own: &OwnSessions, element: &str, id: Option<u32>) {
    if let Some(id) = id {
        let mut own = lock(own);
        let q = own.entry(element.into()).or_default();
        q.push_back(id);
        while q.len() > OWN_SESSIONS_KEPT {
            q.pop_front();
        }
    }
}

/// Host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// Identifies what a session was opened with; a change means a new session.
fn session_key(addr: SocketAddr, c: &NetconfCredential) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.hash(&mut h);
    c.user.hash(&mut h);
    c.password.as_ref().map(|s| s.expose()).hash(&mut h);
    c.private_key.hash(&mut h);
    c.private_key_passphrase
        .as_ref()
        .map(|s| s.expose())
        .hash(&mut h);
    c.known_hosts.hash(&mut h);
    c.host_key_sha256.hash(&mut h);
    c.insecure_accept_any_host_key.hash(&mut h);
    h.finish()
}

impl NetconfClient {
    /// `timeout` bounds each blocking step (connect, each read); see [`NetconfSection`].
    pub fn new(settings: NetconfSection, timeout: Duration) -> NetconfClient {
        let workers = Workers::start(settings.threads);
        let reactor = Reactor::start(workers.clone());
        NetconfClient {
            inner: Arc::new(Inner {
                settings,
                timeout,
                workers,
                reactor,
                own: Arc::default(),
                host: OnceLock::new(),
                next_stream: AtomicU64::new(1),
                subscribed: Default::default(),
            }),
            slots: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    pub fn set_host(&self, host: Weak<dyn Host>) {
        let _ = self.inner.host.set(host);
    }

    fn target(
        &self,
        element: &Element,
        addr: SocketAddr,
        c: NetconfCredential,
        keepalive: Duration,
    ) -> Target {
        Target {
            addr,
            host: host_of(&element.address),
            credential: c,
            timeout: self.inner.timeout,
            max_reply: self.inner.settings.max_reply_bytes,
            keepalive,
        }
    }

    /// One poll of `element`, bounded by `budget` overall.
    pub async fn poll(
        &self,
        element: &Element,
        credential: NetconfCredential,
        addr: SocketAddr,
        budget: Duration,
    ) -> Outcome {
        let slot = lock(&self.slots)
            .entry(element.name.clone())
            .or_default()
            .clone();
        let key = session_key(addr, &credential);
        let target = self.target(element, addr, credential, Duration::ZERO);
        let own = self.inner.own.clone();
        let name = element.name.clone();
        let deadline = Instant::now() + budget;
        let result = self
            .inner
            .workers
            .run(move || {
                poll_blocking(&slot, &target, key, deadline, &|id| {
                    remember_session(&own, &name, id)
                })
            })
            .await
            .unwrap_or((Err(NcError::Stopped), false));
        let (result, was_stale) = result;
        let signals = lock(&self.tasks)
            .get(&element.name)
            .map(|t| t.signals.clone());
        let failed = was_stale || result.as_ref().is_err_and(NcError::device_unreachable);
        if let Some(s) = &signals
            && failed
        {
            *lock(&s.last_failure) = Some(Instant::now());
        }
        match result {
            Ok(data) => {
                if let Some(s) = signals {
                    s.wake.notify_one();
                }
                Outcome::Answered(data)
            }
            Err(e) => {
                if e.device_unreachable() {
                    Outcome::Unreachable(e.to_string())
                } else if matches!(e, NcError::Auth(_) | NcError::HostKey(_)) {
                    Outcome::Rejected(e.to_string())
                } else {
                    Outcome::Failed(e.to_string())
                }
            }
        }
    }

    /// Makes `elements` (all protocols; NETCONF ones are picked) the owned set: sessions and
    /// notification tasks of the others are closed, new ones are started.
    pub fn set_owned(&self, elements: &[Element]) {
        let mine: HashMap<&str, &Element> = elements
            .iter()
            .filter(|e| e.protocol == Protocol::Netconf)
            .map(|e| (&*e.name, e))
            .collect();
        {
            let mut slots = lock(&self.slots);
            let gone: Vec<Arc<str>> = slots
                .keys()
                .filter(|n| !mine.contains_key(&***n))
                .cloned()
                .collect();
            for name in gone {
                if let Some(slot) = slots.remove(&*name) {
                    self.inner.workers.spawn(move || {
                        let session = match slot.try_lock() {
                            Ok(mut s) => s.session.take(),
                            Err(TryLockError::Poisoned(p)) => p.into_inner().session.take(),
                            // A poll is running: it drops the session when it ends.
                            Err(TryLockError::WouldBlock) => None,
                        };
                        if let Some(s) = session {
                            s.close(Duration::from_millis(500));
                        }
                    });
                }
            }
        }
        lock(&self.inner.own).retain(|n, _| mine.contains_key(&**n));
        let mut tasks = lock(&self.tasks);
        tasks.retain(|name, t| {
            let keep = mine.get(&**name).is_some_and(|e| **e == t.element);
            if !keep {
                t.handle.abort();
            }
            keep
        });
        if !self.inner.settings.notifications {
            return;
        }
        for (name, e) in mine {
            if tasks.contains_key(name) {
                continue;
            }
            let signals = Arc::new(Signals::default());
            let handle = tokio::spawn(notification_loop(
                self.inner.clone(),
                e.clone(),
                signals.clone(),
            ));
            tasks.insert(
                e.name.clone(),
                NotifTask {
                    element: e.clone(),
                    handle,
                    signals,
                },
            );
        }
    }

    /// Notification sessions subscribed now.
    #[cfg(any(test, feature = "testing"))]
    pub fn subscribed(&self) -> usize {
        self.inner.subscribed.load(Ordering::Relaxed)
    }
}

/// One poll on a worker thread: reuse the element's session or open one, then read.
/// Also says whether the kept session had died (the device restarted or dropped it).
fn poll_blocking(
    slot: &Mutex<Slot>,
    t: &Target,
    key: u64,
    deadline: Instant,
    on_session: &dyn Fn(Option<u32>),
) -> (Result<PollData, NcError>, bool) {
    let mut stale = false;
    let result = poll_slot(slot, t, key, deadline, on_session, &mut stale);
    (result, stale)
}

fn poll_slot(
    slot: &Mutex<Slot>,
    t: &Target,
    key: u64,
    deadline: Instant,
    on_session: &dyn Fn(Option<u32>),
    stale: &mut bool,
) -> Result<PollData, NcError> {
    if Instant::now() >= deadline {
        // Queued behind hung devices on every worker until the poll's time was up.
        return Err(NcError::Timeout(
            "no NETCONF worker thread free within the poll interval (poll.netconf.threads)".into(),
        ));
    }
    let mut slot = match slot.try_lock() {
        Ok(s) => s,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return Err(NcError::Busy),
    };
    if slot.key != key {
        if let Some(old) = slot.session.take() {
            old.close(Duration::from_millis(200));
        }
        slot.key = key;
    }
    let connect = || {
        let s = Session::connect(t)?;
        on_session(s.hello().session_id);
        Ok::<_, NcError>(s)
    };
    let (mut session, reused) = match slot.session.take() {
        Some(s) => (s, true),
        None => (connect()?, false),
    };
    let mut result = read_all(&mut session, deadline);
    if reused && result.as_ref().is_err_and(NcError::stale_session) {
        tracing::debug!("NETCONF session to {} went stale; reconnecting", t.addr);
        *stale = true;
        drop(session);
        session = connect()?;
        result = read_all(&mut session, deadline);
    }
    match &result {
        Ok(_) => slot.session = Some(session),
        Err(e) if e.keeps_session() => slot.session = Some(session),
        Err(_) => {}
    }
    result
}

/// The RPCs of one poll: ietf-system and ietf-interfaces where the device has them.
fn read_all(s: &mut Session, deadline: Instant) -> Result<PollData, NcError> {
    let hello = s.hello().clone();
    // YANG 1.1 modules are listed in ietf-yang-library rather than the hello: ask then too,
    // and take an error as "not there".
    let ask = |module: &str| hello.has_module(module) || hello.has_yang_library();
    let mut system = None;
    if ask("ietf-system") {
        let mut sys = data::SystemData::default();
        let reply = s.rpc(&xml::get(Some(&data::system_filter())), &mut sys, deadline)?;
        if !reply.failed() {
            system = Some(sys);
        } else if hello.has_module("ietf-system") {
            return Err(NcError::Rpc(format!(
                "<get> of ietf-system: {}",
                reply.error_text()
            )));
        }
    }
    let mut interfaces = None;
    if ask("ietf-interfaces") {
        let mut ifs = data::InterfacesData::default();
        let reply = s.rpc(
            &xml::get(Some(&data::interfaces_filter())),
            &mut ifs,
            deadline,
        )?;
        if !reply.failed() {
            interfaces = Some(ifs);
        } else if hello.has_module("ietf-interfaces") {
            return Err(NcError::Rpc(format!(
                "<get> of ietf-interfaces: {}",
                reply.error_text()
            )));
        }
    }
    let mut d = data::poll_data(system, interfaces);
    d.capabilities = hello
        .capabilities
        .iter()
        .map(|c| xml::short_capability(c))
        .collect();
    Ok(d)
}

/// Opens a session and subscribes it to the default stream.
fn subscribe(t: &Target) -> Result<NotificationStream, NcError> {
    let mut s = Session::connect(t)?;
    if !s.hello().has(xml::CAP_NOTIFICATION) {
        s.close(Duration::from_millis(200));
        return Err(NcError::NotSupported);
    }
    let deadline = Instant::now() + t.timeout;
    let reply = s.rpc(&xml::create_subscription(), &mut xml::NoData, deadline)?;
    if reply.failed() {
        let text = reply.error_text();
        s.close(Duration::from_millis(200));
        return Err(NcError::Rpc(format!("<create-subscription>: {text}")));
    }
    Ok(s.into_stream())
}

/// Counts while alive (also when its task is aborted).
struct Counted<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Counted<'a> {
    fn new(c: &'a std::sync::atomic::AtomicUsize) -> Counted<'a> {
        c.fetch_add(1, Ordering::Relaxed);
        Counted(c)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps one element subscribed for as long as this server owns it (aborted on hand-over).
async fn notification_loop(inner: Arc<Inner>, element: Element, signals: Arc<Signals>) {
    let min = Duration::from_secs(1);
    let mut backoff = min;
    let mut last_error = String::new();
    loop {
        let Some(host) = inner.host.get().and_then(Weak::upgrade) else {
            return;
        };
        let Some(Credential::Netconf(cred)) = host.credential(&element.credential) else {
            return;
        };
        drop(host);
        let outcome = match crate::resolve::resolve(&element.address, inner.timeout).await {
            Err(e) => Err(NcError::Connect(e)),
            Ok(addr) => {
                let t = Target {
                    addr,
                    host: host_of(&element.address),
                    credential: cred,
                    timeout: inner.timeout,
                    max_reply: inner.settings.max_reply_bytes,
                    keepalive: inner.settings.keepalive,
                };
                inner
                    .workers
                    .run(move || subscribe(&t))
                    .await
                    .unwrap_or(Err(NcError::Stopped))
            }
        };
        match outcome {
            Ok(stream) => {
                backoff = min;
                last_error.clear();
                remember_session(&inner.own, &element.name, stream.session_id());
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let id = inner.next_stream.fetch_add(1, Ordering::Relaxed);
                inner.reactor.add(id, stream, tx);
                let since = Instant::now();
                let counted = Counted::new(&inner.subscribed);
                tracing::info!("{}: subscribed to NETCONF notifications", element.name);
                loop {
                    tokio::select! {
                        d = rx.recv() => match d {
                            Some(Delivery::Message(m)) => deliver(&inner, &element.name, &m),
                            Some(Delivery::Ended(why)) => {
                                tracing::info!("{}: notification session ended: {why}", element.name);
                                break;
                            }
                            None => break,
                        },
                        _ = signals.wake.notified() => {
                            if lock(&signals.last_failure).is_some_and(|t| t > since) {
                                tracing::info!(
                                    "{}: the device came back; renewing the subscription",
                                    element.name
                                );
                                // Dropping the receiver makes the reactor close the session.
                                break;
                            }
                        }
                    }
                }
                drop(counted);
            }
            Err(NcError::Stopped) => return,
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    tracing::info!(
                        "{}: cannot subscribe to notifications: {text}",
                        element.name
                    );
                    last_error = text;
                }
                if matches!(e, NcError::NotSupported) {
                    backoff = inner.settings.reconnect_max;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = signals.wake.notified() => {}
        }
        backoff = (backoff * 2).min(inner.settings.reconnect_max);
    }
}

fn deliver(inner: &Inner, element: &str, raw: &[u8]) {
    let n = match xml::parse_incoming(raw) {
        Ok(xml::Incoming::Notification(n)) => n,
        Ok(xml::Incoming::Reply(_)) => return,
        Err(e) => {
            tracing::warn!("{element}: unreadable notification: {e}");
            return;
        }
    };
    tracing::debug!("{element}: notification {} ({})", n.name, n.ns);
    if n.ns == xml::NS_NOTIFICATION
        && matches!(n.name.as_str(), "replayComplete" | "notificationComplete")
    {
        return;
    }
    let own: Vec<u32> = lock(&inner.own)
        .get(element)
        .map(|q| q.iter().copied().collect())
        .unwrap_or_default();
    if let Some(host) = inner.host.get().and_then(Weak::upgrade) {
        host.notified(element, &n, &|id| own.contains(&id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        assert!(NcError::Timeout("x".into()).device_unreachable());
        assert!(!NcError::Auth("x".into()).device_unreachable());
        assert!(!NcError::HostKey("x".into()).device_unreachable());
        assert!(!NcError::Framing(FramingError::TooLarge { limit: 1 }).device_unreachable());
        assert!(NcError::Framing(FramingError::BadChunk("x".into())).device_unreachable());
        assert_eq!(host_of("[::1]:830"), "::1");
        assert_eq!(host_of("ne1.lab:830"), "ne1.lab");
    }
}
