//! Sockets and tasks. Multi-port mode runs one task per socket: a parked tokio task costs a few
//! hundred bytes, and the receive buffer is per worker thread, not per task, so 10,000 agents
//! stay cheap. Single-port mode runs a few tasks on one shared socket.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use super::codec::{CodecError, decode_request, message_version};
use super::device::{self, Device, Marks, device_index, device_name};
use super::requesters::{Requester, Requesters};
use super::respond::{Limits, answer, answer_with};
use super::v3::{self, Engine, UNKNOWN_CONTEXTS, Verdict, engine_id};
use super::{SimConfig, SimError};

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Datagrams received.
    pub requests: u64,
    /// Replies sent.
    pub responses: u64,
    /// Datagrams that were not a request we answer (bad BER, v1 GetBulk, v3 when disabled).
    pub malformed: u64,
    /// Requests with a community no agent accepts (v3: unknown engine, user or context).
    pub bad_community: u64,
    /// Requests ignored because the agent was in a scheduled outage.
    pub dropped_outage: u64,
    /// Replies that fit in no datagram or that the socket refused.
    pub dropped_other: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    responses: AtomicU64,
    malformed: AtomicU64,
    bad_community: AtomicU64,
    dropped_outage: AtomicU64,
    dropped_other: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Everything the tasks read; immutable apart from the counters.
struct Shared {
    cfg: SimConfig,
    marks: Marks,
    limits: Limits,
    start: Instant,
    counters: Counters,
    requesters: Option<Requesters>,
}

/// A running simulator. Dropping it stops the agents too; [`SimHandle::shutdown`] also waits
/// until every socket is closed.
pub struct SimHandle {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    addrs: Vec<SocketAddr>,
}

impl SimHandle {
    pub fn stats(&self) -> SimStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            requests: get(&c.requests),
            responses: get(&c.responses),
            malformed: get(&c.malformed),
            bad_community: get(&c.bad_community),
            dropped_outage: get(&c.dropped_outage),
            dropped_other: get(&c.dropped_other),
        }
    }

    pub fn agents(&self) -> usize {
        self.shared.cfg.agents
    }

    /// Where agent `index` answers (the shared port in single-port mode).
    pub fn addr(&self, index: usize) -> Option<SocketAddr> {
        if index >= self.agents() {
            return None;
        }
        self.addrs.get(index).or(self.addrs.first()).copied()
    }

    /// The community agent `index` answers to.
    pub fn community(&self, index: usize) -> String {
        let cfg = &self.shared.cfg;
        if cfg.single_port {
            device_name(&cfg.name_prefix, index)
        } else {
            cfg.community.clone()
        }
    }

    /// The sysName agent `index` reports.
    pub fn name(&self, index: usize) -> String {
        device_name(&self.shared.cfg.name_prefix, index)
    }

    /// Time since start: the clock every schedule and sysUpTime is computed from.
    pub fn elapsed(&self) -> Duration {
        self.shared.start.elapsed()
    }

    /// Which servers polled agent `index` and when (empty unless `track_requesters`).
    pub fn requesters(&self, index: usize) -> Vec<Requester> {
        self.shared
            .requesters
            .as_ref()
            .map(|r| r.of(index))
            .unwrap_or_default()
    }

    /// The newest polls of agent `index`, oldest first (empty unless `track_requesters`).
    pub fn polls(&self, index: usize) -> Vec<super::requesters::Poll> {
        self.shared
            .requesters
            .as_ref()
            .map(|r| r.polls(index))
            .unwrap_or_default()
    }

    pub async fn shutdown(mut self) {
        self.tasks.shutdown().await;
    }
}

/// Binds every socket first (so a taken port fails the whole start), then spawns the tasks.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    validate(&cfg)?;
    super::overrides::log(&cfg);
    let ports: Vec<u16> = if cfg.single_port {
        vec![cfg.base_port]
    } else {
        (0..cfg.agents)
            .map(|i| u16::try_from(usize::from(cfg.base_port) + i))
            .collect::<Result<_, _>>()
            .map_err(|_| SimError::PortRange {
                base: cfg.base_port,
                agents: cfg.agents,
            })?
    };
    let mut sockets = Vec::with_capacity(ports.len());
    for port in ports {
        sockets.push(bind(SocketAddr::new(cfg.listen, port))?);
    }
    let addrs = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| SimError::Bind {
            addr: SocketAddr::new(cfg.listen, cfg.base_port),
            source,
            hint: "",
        })?;
    let shared = Arc::new(Shared {
        marks: Marks::find(&cfg.data, cfg.flap.as_ref()),
        limits: Limits {
            max_size: cfg.max_msg_size,
            ..Limits::default()
        },
        start: Instant::now(),
        counters: Counters::default(),
        requesters: cfg.track_requesters.then(|| Requesters::new(cfg.agents)),
        cfg,
    });
    let mut tasks = JoinSet::new();
    if shared.cfg.single_port {
        let sock = Arc::new(sockets.remove(0));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        for _ in 0..workers {
            tasks.spawn(serve(sock.clone(), shared.clone(), None));
        }
    } else {
        for (i, sock) in sockets.into_iter().enumerate() {
            tasks.spawn(serve(Arc::new(sock), shared.clone(), Some(i)));
        }
    }
    Ok(SimHandle {
        shared,
        tasks,
        addrs,
    })
}

fn validate(cfg: &SimConfig) -> Result<(), SimError> {
    let bad = |m: String| Err(SimError::Config(m));
    if cfg.agents == 0 {
        return bad("agents must be at least 1".into());
    }
    if cfg.base_port == 0 && !cfg.single_port {
        return bad("base_port 0 (any free port) needs single-port mode".into());
    }
    if cfg.max_msg_size < 484 {
        return bad(format!(
            "max_msg_size {} is below the SNMP minimum of 484",
            cfg.max_msg_size
        ));
    }
    if let Some(f) = &cfg.flap {
        device::check("flap", f.every, f.period, f.down_for).or_else(bad)?;
    }
    if let Some(o) = &cfg.outage {
        device::check("outage", o.every, o.period, o.down_for).or_else(bad)?;
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> Result<UdpSocket, SimError> {
    let err = |source: io::Error| {
        let hint = match source.kind() {
            io::ErrorKind::AddrInUse => " (port taken: another simulator or agent is running?)",
            _ if source.raw_os_error() == Some(24) => {
                " (too many open files: raise the limit with `ulimit -n`)"
            }
            _ => "",
        };
        SimError::Bind { addr, source, hint }
    };
    let std_sock = std::net::UdpSocket::bind(addr).map_err(err)?;
    std_sock.set_nonblocking(true).map_err(err)?;
    UdpSocket::from_std(std_sock).map_err(err)
}

/// Datagrams handled before yielding, so one busy socket cannot starve the others.
const BATCH: usize = 64;

async fn serve(sock: Arc<UdpSocket>, shared: Arc<Shared>, agent: Option<usize>) {
    loop {
        if let Err(e) = sock.readable().await {
            tracing::warn!(error = %e, "simulator socket failed; agent stops");
            return;
        }
        if pump(&sock, &shared, agent) {
            tokio::task::yield_now().await;
        }
    }
}

thread_local! {
    // One receive buffer per worker thread instead of 64 KiB per agent.
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 65536]);
}

/// Answers what is queued on the socket; true when it stopped because the batch was full.
fn pump(sock: &UdpSocket, shared: &Shared, agent: Option<usize>) -> bool {
    RECV_BUF.with_borrow_mut(|buf| {
        for _ in 0..BATCH {
            let (n, peer) = match sock.try_recv_from(buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    tracing::debug!(error = %e, "simulator recv error");
                    return false;
                }
            };
            let Some(reply) = handle(shared, agent, &buf[..n]) else {
                continue;
            };
            match sock.try_send_to(&reply, peer) {
                Ok(_) => bump(&shared.counters.responses),
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "simulator send failed");
                    bump(&shared.counters.dropped_other);
                }
            }
        }
        true
    })
}

/// One datagram in, at most one reply out. `agent` is the socket's agent in multi-port mode.
fn handle(shared: &Shared, agent: Option<usize>, datagram: &[u8]) -> Option<Vec<u8>> {
    let c = &shared.counters;
    let cfg = &shared.cfg;
    bump(&c.requests);
    if message_version(datagram) == Some(3) {
        return handle_v3(shared, agent, datagram);
    }
    let Ok(req) = decode_request(datagram) else {
        bump(&c.malformed);
        return None;
    };
    let index = match agent {
        Some(i) if req.community.as_ref() == cfg.community.as_bytes() => Some(i),
        Some(_) => None,
        None => device_index(&cfg.name_prefix, &req.community, cfg.agents),
    };
    let Some(index) = index else {
        bump(&c.bad_community);
        return None;
    };
    let elapsed = shared.start.elapsed();
    if let Some(r) = &shared.requesters {
        r.record(index, req.request_id, elapsed);
    }
    if is_out(shared, index, elapsed) {
        return None;
    }
    let limits = shared.limits;
    outcome(
        shared,
        answer(&device(shared, index, elapsed), &req, limits),
    )
}

/// v3 at noAuthNoPriv. Multi-port: one engine per agent. Single-port: one engine for the
/// simulator, and the context name picks the device (as a proxy agent would).
fn handle_v3(shared: &Shared, agent: Option<usize>, datagram: &[u8]) -> Option<Vec<u8>> {
    let c = &shared.counters;
    let cfg = &shared.cfg;
    let Some(user) = &cfg.v3_user else {
        bump(&c.malformed);
        return None;
    };
    let elapsed = shared.start.elapsed();
    let engine = match agent {
        Some(i) => {
            if is_out(shared, i, elapsed) {
                return None;
            }
            let uptime = cfg.outage.map_or(elapsed, |o| o.uptime(i, elapsed));
            Engine {
                id: engine_id(Some(i)),
                boots: cfg.outage.map_or(1, |o| o.boots(i, elapsed)),
                time: uptime.as_secs() as u32,
            }
        }
        None => Engine {
            id: engine_id(None),
            boots: 1,
            time: elapsed.as_secs() as u32,
        },
    };
    // Any increasing number will do for the usmStats counter a report carries.
    let seen = c.requests.load(Ordering::Relaxed) as u32;
    let (env, req) = match v3::accept(datagram, &engine, user.as_bytes(), seen) {
        Ok(Verdict::Serve(env, req)) => (env, req),
        Ok(Verdict::Report(bytes)) => return Some(bytes),
        Ok(Verdict::Drop) => {
            bump(&c.bad_community);
            return None;
        }
        Err(_) => {
            bump(&c.malformed);
            return None;
        }
    };
    let index = match agent {
        Some(i) => i,
        None => {
            let Some(i) = device_index(&cfg.name_prefix, &env.context_name, cfg.agents) else {
                bump(&c.bad_community);
                let r = v3::report(&env, &engine, req.request_id, &UNKNOWN_CONTEXTS, seen);
                return r.ok();
            };
            if is_out(shared, i, elapsed) {
                return None;
            }
            i
        }
    };
    let limits = Limits {
        max_size: env.max_size.min(shared.limits.max_size),
        ..shared.limits
    };
    let view = device(shared, index, elapsed);
    let result = answer_with(&view, &req, limits, |reply| {
        v3::encode_response(&env, &engine, reply)
    });
    outcome(shared, result)
}

/// Whether agent `index` is in a scheduled outage (and counts the drop if so).
fn is_out(shared: &Shared, index: usize, elapsed: Duration) -> bool {
    let out = shared.cfg.outage.is_some_and(|o| o.is_down(index, elapsed));
    if out {
        bump(&shared.counters.dropped_outage);
    }
    out
}

fn device(shared: &Shared, index: usize, elapsed: Duration) -> Device<'_> {
    let cfg = &shared.cfg;
    Device {
        data: &cfg.data,
        marks: shared.marks,
        name_prefix: &cfg.name_prefix,
        index,
        uptime: cfg.outage.map_or(elapsed, |o| o.uptime(index, elapsed)),
        link_down: cfg.flap.is_some_and(|f| f.is_down(index, elapsed)),
        traffic: cfg.traffic,
    }
}

fn outcome(shared: &Shared, result: Result<Option<Vec<u8>>, CodecError>) -> Option<Vec<u8>> {
    match result {
        Ok(Some(bytes)) => Some(bytes),
        Ok(None) => {
            bump(&shared.counters.dropped_other);
            None
        }
        Err(_) => {
            bump(&shared.counters.malformed);
            None
        }
    }
}
