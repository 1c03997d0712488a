//! The listener axum serves from: plain TCP, or TLS handshakes done off the accept path.
//!
//! [`Incoming`] wraps any [`axum::serve::Listener`] (the bound `TcpListener`, or one that caps
//! connections or times them out), so TLS composes with other accept-side policies. Each
//! handshake runs in its own task with a deadline, so a client that opens a connection and
//! says nothing delays nobody else; at most [`MAX_HANDSHAKES`] run at once. A connection's
//! [`Remote`] (its address and, with mutual TLS, the member id of its verified certificate)
//! reaches the handlers as `ConnectInfo<Remote>`.

use crate::model::ServerId;
use crate::ratelog::RateLog;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

/// A client must finish its handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remote {
    pub(crate) addr: SocketAddr,
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
    /// The member id of the client certificate the pool CA verified (mutual TLS only).
    pub(crate) member: Option<ServerId>,
}

impl Connected<IncomingStream<'_, Incoming>> for Remote {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Remote {
        *stream.remote_addr()
    }
}

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(crate) type Io = Box<dyn Stream>;

/// What the accept side counts and logs.
#[derive(Clone)]
pub(crate) struct HandshakeFailures {
    pub(crate) counter: prometheus::IntCounter,
    pub(crate) log: Arc<RateLog<IpAddr>>,
}

pub(crate) struct Incoming {
    rx: mpsc::Receiver<(Io, Remote)>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Incoming {
    /// Accepts from `inner`; with `tls`, each connection is a TLS connection once its
    /// handshake succeeded, and is dropped (counted, logged once a minute per address) if not.
    pub(crate) fn new<L>(
        inner: L,
        local: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        failures: HandshakeFailures,
    ) -> Incoming
    where
        L: Listener<Addr = SocketAddr>,
    {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(accept_loop(inner, tls, failures, tx));
        Incoming { rx, local, task }
    }
}

async fn accept_loop<L>(
    mut inner: L,
    tls: Option<Arc<rustls::ServerConfig>>,
    failures: HandshakeFailures,
    tx: mpsc::Sender<(Io, Remote)>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (io, addr) = inner.accept().await;
        let Some(acceptor) = acceptor.clone() else {
            drop(slot);
            let remote = Remote {
                addr,
                tls: false,
                member: None,
            };
            if tx.send((Box::new(io), remote)).await.is_err() {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        let failures = failures.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                Ok(Ok(stream)) => {
                    let member = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(super::member_id);
                    let remote = Remote {
                        addr,
                        tls: true,
                        member,
                    };
                    let _ = tx.send((Box::new(stream), remote)).await;
                }
                Ok(Err(e)) => refused(&failures, addr, &e.to_string()),
                Err(_) => refused(&failures, addr, "handshake timed out"),
            }
        });
    }
}

fn refused(f: &HandshakeFailures, addr: SocketAddr, why: &str) {
    f.counter.inc();
    if let Some(skipped) = f.log.admit(&addr.ip()) {
        tracing::warn!(
            "TLS handshake with {} refused: {why} ({skipped} more from there in the last minute)",
            addr.ip()
        );
    }
}

impl Listener for Incoming {
    type Io = Io;
    type Addr = Remote;

    async fn accept(&mut self) -> (Io, Remote) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended (its listener failed for good): nothing will come again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Remote> {
        Ok(Remote {
            addr: self.local,
            tls: false,
            member: None,
        })
    }
}
