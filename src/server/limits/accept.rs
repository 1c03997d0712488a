//! The accept loop of the HTTP listener, with caps on what is open at once.
//!
//! One listener serves clients (API, console, metrics) and the pool protocol (`/peer/v1`);
//! each has its own cap (`max_connections`, `max_peer_connections`), so that clients, however
//! many, can never crowd out the members' heartbeats. A connection's class is known from its
//! first request line: until it arrives the connection is *pending*. Every open connection
//! holds one slot of the sum of both caps, which bounds the descriptors HTTP can take. When
//! all are taken, the oldest pending connection (one that has sent nothing, e.g. one of
//! thousands of idle sockets) is closed to make room; a member connecting sends its request at
//! once and is classified before anyone can evict it.
//!
//! With TLS the class comes from the handshake instead of the request line: a connection
//! whose verified certificate names a member is a peer's (`tls::acceptor::handshake`, under
//! the same head timeout and eviction as a request head).

use super::http::{HttpLimits, drive};
use crate::logging::throttle::Throttle;
use crate::metrics::FaultMetrics;
use crate::tls::Remote;
use crate::tls::acceptor::{HandshakeFailures, handshake};
use axum::Router;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// Request lines of the pool protocol (see `api::peer`).
const PEER_PREFIXES: [&[u8]; 2] = [b"POST /peer/v1/", b"GET /peer/v1/"];
/// Bytes enough to tell a peer's request line from a client's.
const PEEK: usize = 14;
/// How long the accept loop waits for an evicted connection to let go of its slot.
const EVICT_WAIT: Duration = Duration::from_millis(200);
/// After `accept` fails for want of descriptors: let a poll or a request finish first.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a stopping server waits for its connections (each has its own 2 s grace).
const DRAIN: Duration = Duration::from_secs(3);

static ACCEPT_FAILURES: Throttle = Throttle::new(Duration::from_secs(60));
static REFUSED: Throttle = Throttle::new(Duration::from_secs(60));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Client,
    Peer,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::Client => "client",
            Class::Peer => "peer",
        }
    }
}

struct Gate {
    limits: HttpLimits,
    /// One slot per open connection, whatever its class.
    open: Arc<Semaphore>,
    clients: Arc<Semaphore>,
    peers: Arc<Semaphore>,
    /// Pending connections, oldest first, each with the bell that evicts it.
    pending: Mutex<VecDeque<(u64, Arc<Notify>)>>,
    next_id: AtomicU64,
    metrics: FaultMetrics,
}

impl Gate {
    fn closed(&self, reason: &str) {
        self.metrics
            .connections_closed
            .with_label_values(&[reason])
            .inc();
    }

    fn gauge(&self, class: &str, delta: i64) {
        self.metrics
            .connections
            .with_label_values(&[class])
            .add(delta);
    }

    fn evict_oldest_pending(&self) -> bool {
        let oldest = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        match oldest {
            Some((_, bell)) => {
                bell.notify_one();
                true
            }
            None => false,
        }
    }

    fn forget_pending(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != id);
    }
}

/// The kernel's queue of connections not yet accepted. std's 128 fills at once under a flood
/// of idle sockets, and every connection past it (a member's, a client's) waits for SYN
/// retries; the accept loop drains a longer queue quickly, evicting idle ones.
const BACKLOG: u32 = 1024;

/// Binds the HTTP listener (address reuse as std does, a longer backlog).
pub(crate) async fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The TLS side of the listener: the rustls acceptor and what counts refused handshakes.
pub(crate) struct TlsAccept {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) failures: HandshakeFailures,
}

/// Serves `app` on `listener` under `limits` (over TLS with `tls`) until `shutdown` resolves;
/// then stops accepting, lets connections finish for a short grace and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    metrics: FaultMetrics,
    tls: Option<Arc<TlsAccept>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let total = limits
        .max_connections
        .saturating_add(limits.max_peer_connections)
        .min(Semaphore::MAX_PERMITS);
    let gate = Arc::new(Gate {
        limits,
        open: Arc::new(Semaphore::new(total)),
        clients: Arc::new(Semaphore::new(limits.max_connections)),
        peers: Arc::new(Semaphore::new(limits.max_peer_connections)),
        pending: Mutex::new(VecDeque::new()),
        next_id: AtomicU64::new(1),
        metrics,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: ours, not the client's. Back off rather than spin.
                if let Some(held) = ACCEPT_FAILURES.allow() {
                    tracing::warn!(
                        "cannot accept HTTP connections: {e} ({held} more like it in the last \
                         minute); open connections: {}",
                        total - gate.open.available_permits()
                    );
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match gate.open.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if gate.evict_oldest_pending() => {
                tokio::time::timeout(EVICT_WAIT, gate.open.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(slot) = slot else {
            gate.closed("cap");
            if let Some(held) = REFUSED.allow() {
                tracing::warn!(
                    "HTTP connection refused: {total} connections open, none of them idle \
                     before its first request ({held} more refused in the last minute)"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            gate.clone(),
            stream,
            addr,
            slot,
            app.clone(),
            stop_rx.clone(),
            tls.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends: all slots back means all ended.
    let total = u32::try_from(total).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, gate.open.acquire_many(total)).await;
}

async fn connection(
    gate: Arc<Gate>,
    stream: TcpStream,
    addr: std::net::SocketAddr,
    _slot: OwnedSemaphorePermit,
    app: Router,
    mut stopping: watch::Receiver<bool>,
    tls: Option<Arc<TlsAccept>>,
) {
    let id = gate.next_id.fetch_add(1, Ordering::Relaxed);
    let bell = Arc::new(Notify::new());
    gate.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back((id, bell.clone()));
    gate.gauge("pending", 1);
    let Some(tls) = tls else {
        let class = tokio::select! {
            c = classify(&stream) => c,
            _ = bell.notified() => Err("evicted"),
            _ = tokio::time::sleep(gate.limits.header_timeout) => Err("header_timeout"),
            _ = stopping.changed() => Err("shutdown"),
        };
        gate.forget_pending(id);
        gate.gauge("pending", -1);
        let remote = Remote {
            addr,
            tls: false,
            member: None,
        };
        match class {
            Ok(c) => serve_connection(&gate, c, stream, remote, app, stopping).await,
            Err("closed") => {}
            Err(reason) => gate.closed(reason),
        }
        return;
    };
    let shaken = tokio::select! {
        h = handshake(&tls.acceptor, stream, addr, &tls.failures) => h.ok_or("tls_handshake"),
        _ = bell.notified() => Err("evicted"),
        _ = tokio::time::sleep(gate.limits.header_timeout) => Err("header_timeout"),
        _ = stopping.changed() => Err("shutdown"),
    };
    gate.forget_pending(id);
    gate.gauge("pending", -1);
    match shaken {
        Ok((stream, remote)) => {
            let class = if remote.member.is_some() {
                Class::Peer
            } else {
                Class::Client
            };
            serve_connection(&gate, class, stream, remote, app, stopping).await;
        }
        Err(reason) => gate.closed(reason),
    }
}

/// A classified connection: under its class's cap, driven by hyper until it ends.
async fn serve_connection<T>(
    gate: &Arc<Gate>,
    class: Class,
    stream: T,
    remote: Remote,
    app: Router,
    stopping: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cap = match class {
        Class::Client => &gate.clients,
        Class::Peer => &gate.peers,
    };
    let Ok(_class_slot) = cap.clone().try_acquire_owned() else {
        gate.closed("cap");
        if let Some(held) = REFUSED.allow() {
            tracing::warn!(
                "HTTP {} connection refused: {} open ({held} more refused in the last minute)",
                class.label(),
                match class {
                    Class::Client => gate.limits.max_connections,
                    Class::Peer => gate.limits.max_peer_connections,
                }
            );
        }
        refuse(stream).await;
        return;
    };
    gate.gauge(class.label(), 1);
    let ended = drive(
        stream,
        remote,
        app,
        gate.limits,
        gate.metrics.clone(),
        stopping,
    )
    .await;
    gate.gauge(class.label(), -1);
    if let Some(reason) = ended {
        gate.closed(reason);
    }
}

/// Waits for the start of the first request line and tells its class; `Err("closed")` when
/// the client left without a byte.
async fn classify(stream: &TcpStream) -> Result<Class, &'static str> {
    let mut buf = [0u8; PEEK];
    // Bounded by the caller's head timeout; the pause keeps a client that sends its request
    // line a byte at a time from spinning us.
    loop {
        let n = stream.peek(&mut buf).await.map_err(|_| "closed")?;
        if n == 0 {
            return Err("closed");
        }
        let seen = &buf[..n];
        if PEER_PREFIXES.iter().any(|p| seen.starts_with(p)) {
            return Ok(Class::Peer);
        }
        let could_be_peer = PEER_PREFIXES
            .iter()
            .any(|p| p.len() > n && p.starts_with(seen));
        if !could_be_peer {
            return Ok(Class::Client);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A short answer rather than a reset, so a client can tell a full server from a dead one.
async fn refuse<T: AsyncWrite + Unpin>(mut stream: T) {
    let body = "too many connections\n";
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(resp.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `None` when the classification still waits after 300 ms.
    async fn class_of(request: &'static [u8]) -> Option<Result<Class, &'static str>> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(request).await.expect("write");
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let (s, _) = listener.accept().await.expect("accept");
        let c = tokio::time::timeout(Duration::from_millis(300), classify(&s))
            .await
            .ok();
        client.abort();
        c
    }

    #[tokio::test]
    async fn the_request_line_tells_peers_from_clients() {
        let heartbeat = b"POST /peer/v1/heartbeat HTTP/1.1\r\n";
        assert_eq!(class_of(heartbeat).await, Some(Ok(Class::Peer)));
        let events = b"GET /peer/v1/local/events HTTP/1.1\r\n";
        assert_eq!(class_of(events).await, Some(Ok(Class::Peer)));
        let client = b"GET /api/v1/elements HTTP/1.1\r\n";
        assert_eq!(class_of(client).await, Some(Ok(Class::Client)));
        assert_eq!(
            class_of(b"POS").await,
            None,
            "a prefix of a peer's line waits"
        );
        assert_eq!(class_of(b"PUT /").await, Some(Ok(Class::Client)));
    }
}
