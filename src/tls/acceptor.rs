//! The TLS side of accepting a connection: the handshake, and who is on the other end.
//!
//! `server::limits` owns the accept loop (caps, eviction, timeouts); for a TLS listener it
//! calls [`handshake`] where a plain connection would be classified by its request line, so
//! the handshake runs under the same head timeout and eviction as a request head. The
//! connection's [`Remote`] (its address and, with mutual TLS, the member id of its verified
//! certificate) reaches the handlers as `ConnectInfo<Remote>`.

use crate::model::ServerId;
use crate::ratelog::RateLog;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remote {
    pub(crate) addr: SocketAddr,
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
    /// The member id of the client certificate the pool CA verified (mutual TLS only).
    pub(crate) member: Option<ServerId>,
}

/// What the accept side counts and logs of refused handshakes.
#[derive(Clone)]
pub(crate) struct HandshakeFailures {
    pub(crate) counter: prometheus::IntCounter,
    pub(crate) log: Arc<RateLog<IpAddr>>,
}

/// Runs the server side of a TLS handshake on `io`. A failure (no or a wrong client
/// certificate, a bad protocol) is counted and logged once a minute per address; the caller
/// bounds the time.
pub(crate) async fn handshake<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    addr: SocketAddr,
    failures: &HandshakeFailures,
) -> Option<(tokio_rustls::server::TlsStream<IO>, Remote)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match acceptor.accept(io).await {
        Ok(stream) => {
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
            Some((stream, remote))
        }
        Err(e) => {
            failures.counter.inc();
            if let Some(skipped) = failures.log.admit(&addr.ip()) {
                tracing::warn!(
                    "TLS handshake with {} refused: {e} ({skipped} more from there in the last minute)",
                    addr.ip()
                );
            }
            None
        }
    }
}
