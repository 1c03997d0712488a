//! The trap receiver: a UDP listener for SNMP v1/v2c/v3 traps and v2c/v3 informs, routing each
//! trap to the server that owns its element, and applying it there as alarms and events.
//!
//! ```text
//!  socket task ──(bounded queue)──> decode task ──> owner is me?  ── yes ──> Mapper -> alarms/events
//!   recv_from        datagrams        decode, ack      │ no
//!                                     match sender     └──> peer worker ── POST /peer/v1/traps (batched)
//! ```
//!
//! - Lossless by back-pressure: when the queue is full the socket task waits and the kernel
//!   buffer (SO_RCVBUF, `[traps] recv_buffer`) absorbs the burst; nothing is dropped in user space
//!   before decoding. Every datagram is counted, every refusal is counted and logged (once per
//!   sender and reason per minute, as an event), every decoded trap ends as an alarm change, an
//!   event, or a counted and logged drop.
//! - Sender matching: the UDP source address (or, with `trust_agent_address`, the v1 agent-addr /
//!   snmpTrapAddress.0 a relay put in) is looked up in `[traps.sources]` first, then among the
//!   elements' addresses. An address shared by several elements is ambiguous: such traps are
//!   logged as `trap.unknown-sender` events naming the candidates, never given to a guess.
//! - Routing: the newest assignment names each element's owner; traps for another member's
//!   elements are forwarded in batches. A forward that fails is retried and re-routed (the
//!   owner may have died and been replaced) for `FORWARD_GIVE_UP`, then logged as
//!   `trap.unrouted` and counted as dropped.
//! - Informs are acknowledged by the server that received them, once decoded (for v3 it is the
//!   authoritative engine: `trap_usm`).
//! - Alarms that no trap clears (Reboot, AuthFailure, Trap) are cleared by a sweep of the alarm
//!   table once they have not repeated for their clear time, wherever they were raised.
//! - Not done: replay protection for v3 *traps* (snmp2 skips the time window for Trap PDUs and
//!   no per-sender engine clock is kept here); informs do get the RFC 3414 time-window check.

use crate::alarms::AlarmTable;
use crate::cluster::Cluster;
use crate::cluster::protocol::AssignmentId;
use crate::config::TrapsSection;
use crate::eventlog::EventLog;
use crate::metrics::TrapMetrics;
use crate::model::{Element, NewEvent, ServerId, Severity, UnixMillis, now_millis};
use crate::poll::Poller;
use crate::rules::trap::{MapRules, Mapper, describe};
use crate::snmp::trap::{DecodeError, Decoder, Trap};
use crate::snmp::usm::LocalEngine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A forwarded trap: the element it was matched to and how often it was forwarded already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoutedTrap {
    pub(crate) element: String,
    #[serde(default)]
    pub(crate) hops: u8,
    pub(crate) trap: Trap,
}

/// Body of `POST /peer/v1/traps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrapBatch {
    pub(crate) from: ServerId,
    pub(crate) traps: Vec<RoutedTrap>,
}

/// Answer of `POST /peer/v1/traps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchResult {
    pub(crate) applied: usize,
    pub(crate) forwarded: usize,
    pub(crate) unrouted: usize,
}

/// A trap forwarded this many times is not forwarded again (assignments that disagree while
/// ownership moves must not bounce it around).
const MAX_HOPS: u8 = 2;
/// How long a batch for an unreachable owner is retried (re-routed each time) before its traps
/// are logged as unrouted. Covers a fail-over: failure_timeout plus a master round.
const FORWARD_GIVE_UP: Duration = Duration::from_secs(20);
const FORWARD_RETRY: Duration = Duration::from_millis(250);
/// Traps waiting for one peer; past it new ones are dropped (counted and logged).
const PEER_QUEUE: usize = 100_000;
/// How often the route table is compared with the newest assignment.
const ROUTE_REFRESH: Duration = Duration::from_millis(100);
/// How often held-back linkDowns and clear timers are checked.
const TICK: Duration = Duration::from_millis(200);
/// Trap-raised alarms are checked for their clear time every this many ticks (1 s).
const SWEEP_EVERY_TICKS: u32 = 5;
/// How long the decode task waits for the pool's first assignment before it routes anyway.
const FIRST_ASSIGNMENT_WAIT: Duration = Duration::from_secs(10);
/// Refusals and unknown senders are logged once per sender and kind in this window.
const LOG_WINDOW_MS: i64 = 60_000;
const LOG_LIMITER_SIZE: usize = 10_000;
const ROUTES_MAX_AGE: Duration = Duration::from_secs(30);
const DNS_TTL: Duration = Duration::from_secs(600);
const DNS_NEGATIVE_TTL: Duration = Duration::from_secs(60);
/// Names looked up per route refresh (concurrently; the rest wait for the next refresh).
const DNS_PER_ROUND: usize = 64;
const MAX_DATAGRAM: usize = 65_535;

/// Who a trap is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sender {
    Element(String),
    Unknown(IpAddr),
    Ambiguous(IpAddr, Vec<String>),
}

/// Element addresses and owners, rebuilt when the assignment changes.
#[derive(Debug)]
pub(crate) struct Routes {
    id: AssignmentId,
    built: tokio::time::Instant,
    by_ip: HashMap<IpAddr, Vec<Arc<str>>>,
    owners: HashMap<Arc<str>, ServerId>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes::build(
            AssignmentId::default(),
            &[],
            &BTreeMap::new(),
            &HashMap::new(),
        )
    }
}

impl Routes {
    /// From the inventory with its owners; element names resolve to addresses only when they
    /// are literal IPs or `resolved` has them.
    pub(crate) fn build(
        id: AssignmentId,
        elements: &[Element],
        owners: &BTreeMap<Arc<str>, ServerId>,
        resolved: &HashMap<String, Vec<IpAddr>>,
    ) -> Routes {
        let mut by_ip: HashMap<IpAddr, Vec<Arc<str>>> = HashMap::new();
        for e in elements {
            let Some(host) = host_of(&e.address) else {
                continue;
            };
            let ips = match host.parse::<IpAddr>() {
                Ok(ip) => vec![canonical(ip)],
                Err(_) => resolved.get(host).cloned().unwrap_or_default(),
            };
            for ip in ips {
                by_ip.entry(ip).or_default().push(e.name.clone());
            }
        }
        // Sorted and deduplicated once: a `contains` per element was quadratic when many
        // elements share an address (a single-port simulator): 20,000 took 70 s.
        for names in by_ip.values_mut() {
            names.sort();
            names.dedup();
        }
        Routes {
            id,
            built: tokio::time::Instant::now(),
            by_ip,
            owners: owners.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    pub(crate) fn owner(&self, element: &str) -> Option<ServerId> {
        self.owners.get(element).copied()
    }

    /// Matches a trap's sender: explicit `sources` first, then element addresses.
    pub(crate) fn sender(
        &self,
        trap: &Trap,
        sources: &BTreeMap<IpAddr, String>,
        trust_agent_address: bool,
    ) -> Sender {
        let ip = match trap.agent_addr {
            Some(a) if trust_agent_address => a,
            _ => trap.source,
        };
        let ip = canonical(ip);
        if let Some(name) = sources.get(&ip) {
            return Sender::Element(name.clone());
        }
        match self.by_ip.get(&ip).map(Vec::as_slice) {
            Some([one]) => Sender::Element(one.to_string()),
            Some(many) if !many.is_empty() => {
                Sender::Ambiguous(ip, many.iter().map(|n| n.to_string()).collect())
            }
            _ => Sender::Unknown(ip),
        }
    }
}

/// IPv4-mapped IPv6 sources (a dual-stack socket) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(address: &str) -> Option<&str> {
    if let Ok(sa) = address.parse::<SocketAddr>() {
        // Borrowing from `address` keeps this allocation-free for the common IPv4 form.
        let h = address.rsplit_once(':')?.0;
        return Some(if sa.is_ipv6() {
            h.trim_start_matches('[').trim_end_matches(']')
        } else {
            h
        });
    }
    address.rsplit_once(':').map(|(h, _)| h)
}

/// Logs a kind of trouble once per sender per minute and counts what it held back.
#[derive(Default)]
struct LogLimiter {
    seen: HashMap<(IpAddr, &'static str), (UnixMillis, u64)>,
}

impl LogLimiter {
    /// `Some(suppressed since the last report)` when this one may be logged.
    fn allow(&mut self, ip: IpAddr, kind: &'static str, now: UnixMillis) -> Option<u64> {
        if self.seen.len() >= LOG_LIMITER_SIZE {
            self.seen.retain(|_, (at, _)| now - *at < LOG_WINDOW_MS);
        }
        let tracked = self.seen.len();
        match self.seen.get_mut(&(ip, kind)) {
            Some((at, n)) if now - *at < LOG_WINDOW_MS => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let held = *n;
                *at = now;
                *n = 0;
                Some(held)
            }
            None if tracked < LOG_LIMITER_SIZE => {
                self.seen.insert((ip, kind), (now, 0));
                Some(0)
            }
            // Flooded by more senders than we track: stay quiet, the counters still count.
            None => None,
        }
    }
}

struct Settings {
    sources: BTreeMap<IpAddr, String>,
    trust_agent_address: bool,
    forward_batch: usize,
    forward_interval: Duration,
}

/// The trap subsystem of one server; always present, because even a server without a listener
/// applies traps that peers forward for its elements.
pub(crate) struct TrapService {
    me: ServerId,
    /// For the peer tasks this service spawns.
    weak: std::sync::Weak<TrapService>,
    settings: Settings,
    cluster: Arc<Cluster>,
    poller: Arc<Poller>,
    alarms: Arc<AlarmTable>,
    events: EventLog,
    metrics: TrapMetrics,
    mapper: Mutex<Mapper>,
    clear_rules: MapRules,
    routes: RwLock<Arc<Routes>>,
    /// The configured inventory, matched against until the pool's first assignment.
    peers: Mutex<HashMap<ServerId, mpsc::Sender<RoutedTrap>>>,
    limiter: Mutex<LogLimiter>,
    local_addr: Mutex<Option<SocketAddr>>,
    listening: std::sync::atomic::AtomicBool,
    dns: Mutex<HashMap<String, (Vec<IpAddr>, tokio::time::Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TrapService {
    /// Starts route upkeep and timers, and the UDP listener when `section` enables it.
    /// Errors only when the listener cannot be set up (bad address, port in use, bad v3 user).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        me: ServerId,
        section: Option<&TrapsSection>,
        cluster: Arc<Cluster>,
        poller: Arc<Poller>,
        alarms: Arc<AlarmTable>,
        events: EventLog,
        metrics: TrapMetrics,
    ) -> anyhow::Result<(Arc<TrapService>, Vec<JoinHandle<()>>)> {
        let defaults = TrapsSection::default();
        let cfg = section.unwrap_or(&defaults);
        let svc = Arc::new_cyclic(|weak| TrapService {
            me,
            weak: weak.clone(),
            settings: Settings {
                sources: cfg
                    .sources
                    .iter()
                    .map(|(ip, n)| (canonical(*ip), n.clone()))
                    .collect(),
                trust_agent_address: cfg.trust_agent_address,
                forward_batch: cfg.forward_batch,
                forward_interval: cfg.forward_interval,
            },
            cluster,
            poller,
            alarms,
            events,
            metrics,
            mapper: Mutex::new(Mapper::new(MapRules::from(cfg))),
            clear_rules: MapRules::from(cfg),
            routes: RwLock::new(Arc::new(Routes::default())),
            peers: Mutex::new(HashMap::new()),
            limiter: Mutex::new(LogLimiter::default()),
            local_addr: Mutex::new(None),
            listening: std::sync::atomic::AtomicBool::new(section.is_some_and(|c| c.enabled)),
            dns: Mutex::new(HashMap::new()),
        });
        svc.refresh_routes().await;
        let mut tasks = vec![
            tokio::spawn(routes_task(Arc::downgrade(&svc))),
            tokio::spawn(tick_task(Arc::downgrade(&svc))),
        ];
        if let Some(cfg) = section.filter(|c| c.enabled) {
            let engine_id = match &cfg.engine_id {
                Some(h) => crate::config::parse_engine_id(h)
                    .ok_or_else(|| anyhow::anyhow!("[traps] engine_id is not hex"))?,
                None => LocalEngine::default_id(me.0),
            };
            let boots = next_engine_boots(&svc.events).await;
            // Key localization hashes a megabyte per key: keep it off the async workers.
            let (communities, users, id) = (
                cfg.communities.clone(),
                cfg.v3_users.clone(),
                engine_id.clone(),
            );
            let decoder = tokio::task::spawn_blocking(move || {
                Decoder::new(&communities, &users)
                    .and_then(|d| d.with_local_engine(LocalEngine::new(id, boots), &users))
            })
            .await?
            .map_err(|e| anyhow::anyhow!("[traps] v3_users: {e}"))?;
            tracing::info!(
                "trap receiver SNMPv3 engine id {} (boots {boots})",
                crate::snmp::trap::hex(&engine_id)
            );
            let socket = bind(cfg.listen, cfg.recv_buffer)?;
            let local = socket.local_addr()?;
            *lock(&svc.local_addr) = Some(local);
            let socket = Arc::new(socket);
            let (tx, rx) = mpsc::channel(cfg.queue);
            tasks.push(tokio::spawn(recv_task(
                socket.clone(),
                tx,
                svc.metrics.clone(),
            )));
            tasks.push(tokio::spawn(decode_task(
                Arc::downgrade(&svc),
                socket,
                decoder,
                rx,
            )));
            tracing::info!("trap listener on udp {local}");
        }
        Ok((svc, tasks))
    }

    /// The bound UDP address when the listener runs.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.local_addr)
    }

    pub(crate) fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn refresh_routes(&self) {
        let view_id = self.cluster.view().assignment;
        let current = self.routes();
        // Rebuilt on a new assignment, and now and then for DNS names (their addresses change
        // and more than one round of lookups may be needed).
        if view_id == current.id && !current.is_empty() && current.built.elapsed() < ROUTES_MAX_AGE
        {
            return;
        }
        let a = self.cluster.assignment();
        let (elements, owners) = if a.elements.is_empty() {
            // No assignment yet: match against the configured inventory, owners unknown.
            (self.cluster.seed(), BTreeMap::new())
        } else {
            (a.elements, a.owners)
        };
        let resolved = if self.listening.load(std::sync::atomic::Ordering::Relaxed) {
            self.resolve(&elements).await
        } else {
            // Without a listener no sender is matched here: owners are all that is needed.
            HashMap::new()
        };
        let routes = Routes::build(a.id, &elements, &owners, &resolved);
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
    }

    /// Addresses of elements named by DNS, cached (10 minutes, failures 1 minute) and looked
    /// up concurrently, so that an inventory of names does not stall route updates.
    async fn resolve(&self, elements: &[Element]) -> HashMap<String, Vec<IpAddr>> {
        let now = tokio::time::Instant::now();
        let todo: Vec<(String, String)> = {
            let cache = lock(&self.dns);
            let mut seen = std::collections::HashSet::new();
            elements
                .iter()
                .filter_map(|e| {
                    let h = host_of(&e.address)?;
                    if h.parse::<IpAddr>().is_ok() || !seen.insert(h) {
                        return None;
                    }
                    let fresh = cache.get(h).is_some_and(|(ips, at)| {
                        let ttl = if ips.is_empty() {
                            DNS_NEGATIVE_TTL
                        } else {
                            DNS_TTL
                        };
                        now.duration_since(*at) < ttl
                    });
                    (!fresh).then(|| (h.to_owned(), e.address.to_string()))
                })
                .collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for (host, address) in todo.into_iter().take(DNS_PER_ROUND) {
            set.spawn(async move {
                // Async (hickory): a silent name server costs the second, never a thread.
                let ips: Vec<IpAddr> =
                    match crate::resolve::resolve_all(&address, Duration::from_secs(1)).await {
                        Ok(addrs) => addrs.into_iter().map(|sa| canonical(sa.ip())).collect(),
                        Err(_) => Vec::new(),
                    };
                (host, ips)
            });
        }
        let mut found = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(x) = r {
                found.push(x);
            }
        }
        let mut cache = lock(&self.dns);
        for (host, ips) in found {
            cache.insert(host, (ips, now));
        }
        cache
            .iter()
            .filter(|(_, (ips, _))| !ips.is_empty())
            .map(|(h, (ips, _))| (h.clone(), ips.clone()))
            .collect()
    }

    /// The owner of `element`: this server while it polls it, else the assignment's choice.
    fn owner_of(&self, element: &str, routes: &Routes) -> Option<ServerId> {
        if self.poller.owns(element) {
            return Some(self.me);
        }
        routes.owner(element)
    }

    /// A trap decoded here: match its sender, then apply or forward it.
    fn ingest(&self, trap: Trap) {
        let routes = self.routes();
        match routes.sender(
            &trap,
            &self.settings.sources,
            self.settings.trust_agent_address,
        ) {
            Sender::Element(element) => {
                self.route(
                    RoutedTrap {
                        element,
                        hops: 0,
                        trap,
                    },
                    &routes,
                );
            }
            Sender::Unknown(ip) => self.unknown_sender(ip, &trap, None),
            Sender::Ambiguous(ip, names) => self.unknown_sender(ip, &trap, Some(&names)),
        };
    }

    /// Applies here, queues for the owner, or logs as unrouted. Returns what happened.
    fn route(&self, t: RoutedTrap, routes: &Routes) -> Routed {
        match self.owner_of(&t.element, routes) {
            Some(owner) if owner == self.me && self.poller.lease().may_act() => {
                self.apply(&t.element, &t.trap);
                Routed::Applied
            }
            Some(owner) if owner == self.me => {
                // Paused or cut off: the element may be someone else's by now.
                let why = "this server's pool lease does not hold (cut off or paused)";
                self.unrouted(&[t], why);
                Routed::Unrouted
            }
            Some(owner) if t.hops < MAX_HOPS => {
                self.forward(owner, t);
                Routed::Forwarded
            }
            owner => {
                let why = match owner {
                    Some(o) => format!("forwarded {} times, last owner {o}", t.hops),
                    None => "the element has no owner in the assignment".into(),
                };
                self.unrouted(&[t], &why);
                Routed::Unrouted
            }
        }
    }

    /// Traps forwarded by a peer (`POST /peer/v1/traps`).
    pub(crate) fn accept_batch(&self, batch: TrapBatch) -> BatchResult {
        let routes = self.routes();
        let mut r = BatchResult::default();
        for mut t in batch.traps {
            t.hops = t.hops.saturating_add(1);
            match self.route(t, &routes) {
                Routed::Applied => r.applied += 1,
                Routed::Forwarded => r.forwarded += 1,
                Routed::Unrouted => r.unrouted += 1,
            }
        }
        r
    }

    fn apply(&self, element: &str, trap: &Trap) {
        let changes = lock(&self.mapper).on_trap(element, trap, now_millis());
        self.alarms.apply(element, changes);
        self.metrics.applied.inc();
    }

    /// Clears trap-raised alarms whose clear time has passed since their last repeat. Works
    /// from the alarm table, so alarms handed over by a previous owner clear too.
    fn sweep(&self) {
        let now = now_millis();
        for (kind, after) in self.clear_rules.clear_after() {
            let before = now.saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
            for (element, instance) in self.alarms.stale(kind, before) {
                if self.poller.may_act(&element) {
                    self.alarms.clear(
                        kind,
                        &element,
                        instance.as_deref(),
                        &format!("no repeat within {}", humantime::format_duration(after)),
                    );
                }
            }
        }
    }

    fn tick(&self) {
        let due = lock(&self.mapper).tick(now_millis());
        for (element, change) in due {
            // An element that moved away meanwhile: its new owner re-derives its state by
            // polling; raising it here would leave an alarm on a server that does not own it.
            if self.poller.may_act(&element) {
                self.alarms.apply(&element, [change]);
            }
        }
    }

    fn forward(&self, owner: ServerId, t: RoutedTrap) {
        let tx = {
            let mut peers = lock(&self.peers);
            peers
                .entry(owner)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(PEER_QUEUE);
                    tokio::spawn(peer_task(self.weak.clone(), owner, rx));
                    tx
                })
                .clone()
        };
        if let Err(e) = tx.try_send(t) {
            let t = match e {
                mpsc::error::TrySendError::Full(t) | mpsc::error::TrySendError::Closed(t) => t,
            };
            self.metrics
                .dropped
                .with_label_values(&["forward_queue"])
                .inc();
            self.log_limited(
                t.trap.source,
                "trap.dropped",
                Severity::Major,
                Some(&t.element),
                format!(
                    "trap for {} dropped: the queue to its owner, server {owner}, is full",
                    t.element
                ),
            );
        }
    }

    fn unrouted(&self, traps: &[RoutedTrap], why: &str) {
        self.metrics
            .dropped
            .with_label_values(&["forward"])
            .inc_by(traps.len() as u64);
        for t in traps {
            // Kept as events here so that nothing vanishes: one per trap, the operator can
            // read what the owner missed.
            self.events.append(NewEvent::now(
                Some(&t.element),
                "trap.unrouted",
                Severity::Warning,
                format!("{} (not delivered to the owner: {why})", describe(&t.trap)),
            ));
        }
        tracing::warn!(
            "{} trap(s) not delivered to their owner: {why}",
            traps.len()
        );
    }

    fn unknown_sender(&self, ip: IpAddr, trap: &Trap, candidates: Option<&[String]>) {
        self.metrics.unknown_sender.inc();
        let text = match candidates {
            None => format!(
                "trap from {ip}, which is no element's address (add the element, or map the \
                 address in [traps.sources]): {}",
                describe(trap)
            ),
            Some(names) => format!(
                "trap from {ip}, the address of several elements ({}; map the address in \
                 [traps.sources]): {}",
                names.join(", "),
                describe(trap)
            ),
        };
        self.log_limited(ip, "trap.unknown-sender", Severity::Warning, None, text);
    }

    fn invalid(&self, ip: IpAddr, e: &DecodeError) {
        self.metrics.invalid.with_label_values(&[e.reason()]).inc();
        if e.is_discovery() {
            return;
        }
        self.log_limited(
            ip,
            "trap.invalid",
            Severity::Warning,
            None,
            format!("datagram from {ip} refused: {e}"),
        );
    }

    fn log_limited(
        &self,
        ip: IpAddr,
        kind: &'static str,
        severity: Severity,
        element: Option<&str>,
        text: String,
    ) {
        let Some(held) = lock(&self.limiter).allow(ip, kind, now_millis()) else {
            return;
        };
        let text = if held > 0 {
            format!("{text} ({held} more like it from {ip} in the last minute not logged)")
        } else {
            text
        };
        tracing::warn!("{kind}: {text}");
        self.events
            .append(NewEvent::now(element, kind, severity, text));
    }
}

enum Routed {
    Applied,
    Forwarded,
    Unrouted,
}

fn bind(addr: SocketAddr, recv_buffer: usize) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel caps this at net.core.rmem_max; say so rather than run with less unnoticed.
    if let Err(e) = s.set_recv_buffer_size(recv_buffer) {
        tracing::warn!("[traps] recv_buffer {recv_buffer}: {e}");
    }
    let got = s.recv_buffer_size().unwrap_or(0);
    // Linux reports twice the granted size (bookkeeping overhead included).
    if got < recv_buffer {
        tracing::warn!(
            "[traps] recv_buffer: asked for {recv_buffer} bytes, the kernel granted {got} \
             (raise net.core.rmem_max)"
        );
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .map_err(|e| anyhow::anyhow!("cannot listen for traps on udp {addr}: {e}"))?;
    Ok(UdpSocket::from_std(s.into())?)
}

/// Kernel drops of the UDP sockets bound to `port` (the `drops` column of /proc/net/udp and
/// udp6); 0 where those files do not exist.
fn socket_drops(port: u16) -> u64 {
    let want = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if f.get(1)?.ends_with(&want) {
                        f.last()?.parse::<u64>().ok()
                    } else {
                        None
                    }
                })
                .collect::<Vec<u64>>()
        })
        .sum()
}

const META_ENGINE_BOOTS: &str = "traps.engine_boots";

/// snmpEngineBoots: one more than at the last start, kept in the event log's meta table.
async fn next_engine_boots(events: &EventLog) -> u32 {
    let last: u32 = events
        .meta_get(META_ENGINE_BOOTS)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(0);
    let boots = last.saturating_add(1).min(0x7fff_fffe);
    let bytes = serde_json::to_vec(&boots).unwrap_or_default();
    if let Err(e) = events.meta_put(META_ENGINE_BOOTS, bytes).await {
        tracing::warn!("cannot persist snmpEngineBoots: {e}");
    }
    boots
}

type Datagram = (Vec<u8>, SocketAddr, UnixMillis);

async fn recv_task(socket: Arc<UdpSocket>, tx: mpsc::Sender<Datagram>, metrics: TrapMetrics) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors of earlier sends (informs' acks) surface here on some systems.
                tracing::debug!("trap socket: {e}");
                continue;
            }
        };
        metrics.received.inc();
        let item = (buf[..n].to_vec(), from, now_millis());
        match tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => {
                metrics.queue_waits.inc();
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn decode_task(
    svc: std::sync::Weak<TrapService>,
    socket: Arc<UdpSocket>,
    decoder: Decoder,
    mut rx: mpsc::Receiver<Datagram>,
) {
    // Traps that arrive before the pool has assigned anything wait in the queue (and the
    // kernel buffer) rather than being reported as from unknown senders.
    let started = tokio::time::Instant::now();
    while started.elapsed() < FIRST_ASSIGNMENT_WAIT {
        match svc.upgrade() {
            Some(s) if s.routes().is_empty() => {}
            Some(_) => break,
            None => return,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut batch = Vec::with_capacity(256);
    loop {
        if rx.recv_many(&mut batch, 256).await == 0 {
            return;
        }
        let Some(s) = svc.upgrade() else { return };
        for (bytes, from, at) in batch.drain(..) {
            let ip = canonical(from.ip());
            match decoder.decode(&bytes, ip, at) {
                Ok(d) => {
                    s.metrics
                        .decoded
                        .with_label_values(&[d.trap.version.as_str()])
                        .inc();
                    if let Some(ack) = d.ack {
                        // Acknowledged once decoded: the trap is ours from here on.
                        match socket.send_to(&ack, from).await {
                            Ok(_) => s.metrics.informs_acked.inc(),
                            Err(e) => tracing::warn!("cannot acknowledge inform from {from}: {e}"),
                        }
                    }
                    s.ingest(d.trap);
                }
                Err(e) => {
                    if let DecodeError::Report { reply: Some(r), .. } = &e
                        && let Err(err) = socket.send_to(r, from).await
                    {
                        tracing::debug!("cannot send a USM report to {from}: {err}");
                    }
                    s.invalid(ip, &e);
                }
            }
        }
    }
}

async fn routes_task(svc: std::sync::Weak<TrapService>) {
    let mut tick = tokio::time::interval(ROUTE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(s) = svc.upgrade() else { return };
        s.refresh_routes().await;
    }
}

async fn tick_task(svc: std::sync::Weak<TrapService>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u32;
    loop {
        tick.tick().await;
        let Some(s) = svc.upgrade() else { return };
        s.tick();
        n = n.wrapping_add(1);
        if n % SWEEP_EVERY_TICKS == 0 {
            s.sweep();
            if let Some(port) = s.local_addr().map(|a| a.port()) {
                let drops = socket_drops(port);
                let seen = s.metrics.socket_drops.get();
                if drops > seen {
                    s.metrics.socket_drops.inc_by(drops - seen);
                }
            }
        }
    }
}

/// Sends one peer its traps in batches; retries, and re-routes what has changed owner.
async fn peer_task(
    svc: std::sync::Weak<TrapService>,
    peer: ServerId,
    mut rx: mpsc::Receiver<RoutedTrap>,
) {
    let (batch_max, interval) = match svc.upgrade() {
        Some(s) => (s.settings.forward_batch, s.settings.forward_interval),
        None => return,
    };
    let mut batch: Vec<RoutedTrap> = Vec::with_capacity(batch_max);
    loop {
        if rx.recv_many(&mut batch, batch_max).await == 0 {
            return;
        }
        // Fill up to the batch size for at most one interval.
        let deadline = tokio::time::Instant::now() + interval;
        while batch.len() < batch_max {
            let want = batch_max - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, want)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let Some(s) = svc.upgrade() else { return };
        for chunk in by_size(std::mem::take(&mut batch)) {
            send_batch(&s, peer, chunk).await;
        }
    }
}

/// Request bodies stay below this (axum refuses JSON bodies above 2 MB by default); a trap
/// with many large varbinds can be ~100 KB of JSON, so 500 of them would not fit.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// A generous estimate of a trap's JSON size (hex doubles octets, escapes add more).
fn approx_json_len(t: &RoutedTrap) -> usize {
    300 + t.element.len()
        + t.trap
            .varbinds
            .iter()
            .map(|v| {
                64 + 4 * v.oid.0.len()
                    + match &v.value {
                        crate::snmp::trap::TrapValue::Text(x)
                        | crate::snmp::trap::TrapValue::Hex(x)
                        | crate::snmp::trap::TrapValue::Other(x) => 6 * x.len(),
                        crate::snmp::trap::TrapValue::Oid(o) => 11 * o.0.len(),
                        _ => 24,
                    }
            })
            .sum::<usize>()
}

fn by_size(traps: Vec<RoutedTrap>) -> Vec<Vec<RoutedTrap>> {
    let mut out = vec![Vec::new()];
    let mut size = 0;
    for t in traps {
        let n = approx_json_len(&t);
        if size + n > MAX_BATCH_BYTES && out.last().is_some_and(|c| !c.is_empty()) {
            out.push(Vec::new());
            size = 0;
        }
        size += n;
        if let Some(c) = out.last_mut() {
            c.push(t);
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

async fn send_batch(s: &Arc<TrapService>, peer: ServerId, mut traps: Vec<RoutedTrap>) {
    let started = tokio::time::Instant::now();
    loop {
        let body = TrapBatch { from: s.me, traps };
        let sent: Result<BatchResult, _> = s
            .cluster
            .transport
            .post(peer, "/peer/v1/traps", &body, Duration::from_secs(5))
            .await;
        traps = body.traps;
        let err = match sent {
            Ok(_) => {
                s.metrics.forwarded.inc_by(traps.len() as u64);
                return;
            }
            Err(e) => e,
        };
        if started.elapsed() >= FORWARD_GIVE_UP {
            s.unrouted(&traps, &format!("server {peer}: {err}"));
            return;
        }
        tokio::time::sleep(FORWARD_RETRY).await;
        // The owner may have changed (fail-over): send the others where they belong now.
        let routes = s.routes();
        let (stay, moved): (Vec<RoutedTrap>, Vec<RoutedTrap>) = traps
            .into_iter()
            .partition(|t| s.owner_of(&t.element, &routes) == Some(peer));
        for t in moved {
            s.route(t, &routes);
        }
        if stay.is_empty() {
            return;
        }
        traps = stay;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::trap::{Oid, TrapVersion};

    fn element(name: &str, address: &str) -> Element {
        Element {
            name: name.into(),
            address: address.into(),
            protocol: Default::default(),
            credential: "c".into(),
            interval: None,
            pin: None,
        }
    }

    fn trap_from(ip: &str, agent: Option<&str>) -> Trap {
        Trap {
            received: 0,
            source: ip.parse().expect("ip"),
            version: TrapVersion::V2c,
            inform: false,
            trap_oid: Oid(vec![1, 3, 6, 1, 6, 3, 1, 1, 5, 1]),
            uptime: None,
            agent_addr: agent.map(|a| a.parse().expect("ip")),
            user: None,
            varbinds: vec![],
        }
    }

    #[test]
    fn senders_match_by_address_sources_first_and_ambiguity_is_not_guessed() {
        let elements = vec![
            element("a", "127.0.0.2:161"),
            element("b", "127.0.0.3:161"),
            element("c", "127.0.0.3:1161"),
            element("d", "[::1]:161"),
            element("e", "localhost:161"),
        ];
        let mut resolved = HashMap::new();
        resolved.insert(
            "localhost".to_owned(),
            vec!["127.0.0.9".parse().expect("ip"), "::9".parse().expect("ip")],
        );
        let r = Routes::build(
            AssignmentId::default(),
            &elements,
            &BTreeMap::new(),
            &resolved,
        );
        let none = BTreeMap::new();
        assert_eq!(
            r.sender(&trap_from("127.0.0.2", None), &none, false),
            Sender::Element("a".into())
        );
        assert_eq!(
            r.sender(&trap_from("127.0.0.3", None), &none, false),
            Sender::Ambiguous(
                "127.0.0.3".parse().expect("ip"),
                vec!["b".into(), "c".into()]
            )
        );
        assert_eq!(
            r.sender(&trap_from("::1", None), &none, false),
            Sender::Element("d".into())
        );
        assert_eq!(
            r.sender(&trap_from("::ffff:127.0.0.9", None), &none, false),
            Sender::Element("e".into())
        );
        assert!(matches!(
            r.sender(&trap_from("10.0.0.1", None), &none, false),
            Sender::Unknown(_)
        ));
        // The agent address counts only when trusted.
        let relayed = trap_from("10.0.0.1", Some("127.0.0.2"));
        assert!(matches!(
            r.sender(&relayed, &none, false),
            Sender::Unknown(_)
        ));
        assert_eq!(r.sender(&relayed, &none, true), Sender::Element("a".into()));
        let mut sources = BTreeMap::new();
        sources.insert("127.0.0.3".parse().expect("ip"), "c".to_owned());
        assert_eq!(
            r.sender(&trap_from("127.0.0.3", None), &sources, false),
            Sender::Element("c".into())
        );
    }

    #[test]
    fn batches_are_split_below_the_body_limit() {
        use crate::snmp::trap::{TrapValue, VarBind};
        let mut big = trap_from("127.0.0.2", None);
        big.varbinds = (0..200)
            .map(|i| VarBind {
                oid: Oid(vec![1, 3, 6, 1, 4, 1, i]),
                value: TrapValue::Hex("ab".repeat(200)),
            })
            .collect();
        let traps: Vec<RoutedTrap> = (0..500)
            .map(|_| RoutedTrap {
                element: "a".into(),
                hops: 0,
                trap: big.clone(),
            })
            .collect();
        let chunks = by_size(traps);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 500);
        for c in &chunks {
            let body = TrapBatch {
                from: ServerId(1),
                traps: c.clone(),
            };
            let n = serde_json::to_vec(&body).expect("json").len();
            assert!(n < 2_000_000, "chunk of {} traps is {n} bytes", c.len());
        }
        assert_eq!(by_size(Vec::new()).len(), 0);
    }

    #[test]
    fn kernel_drops_of_a_flooded_socket_are_read_from_proc() {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .expect("socket");
        s.set_recv_buffer_size(1024).expect("rcvbuf");
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        let port = s
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("inet")
            .port();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
        for _ in 0..200 {
            let _ = tx.send_to(&[0u8; 100], ("127.0.0.1", port));
        }
        assert!(
            socket_drops(port) > 0,
            "nothing read, tiny buffer: drops expected"
        );
        assert_eq!(socket_drops(1), 0);
    }

    #[test]
    fn limiter_logs_once_per_sender_and_kind_per_minute_and_counts_the_rest() {
        let mut l = LogLimiter::default();
        let ip: IpAddr = "127.0.0.2".parse().expect("ip");
        assert_eq!(l.allow(ip, "a", 0), Some(0));
        assert_eq!(l.allow(ip, "a", 10), None);
        assert_eq!(l.allow(ip, "a", 20), None);
        assert_eq!(l.allow(ip, "b", 20), Some(0));
        assert_eq!(l.allow(ip, "a", LOG_WINDOW_MS), Some(2));
        for i in 0..(LOG_LIMITER_SIZE as u32 + 100) {
            l.allow(IpAddr::from(i.to_be_bytes()), "a", 100);
        }
        assert!(l.seen.len() <= LOG_LIMITER_SIZE);
    }
}
