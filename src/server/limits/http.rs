//! One HTTP/1 connection driven by hyper under our timeouts: a request head must arrive within
//! `header_timeout`, its body within `body_timeout`, and a connection with nothing in flight is
//! closed after `idle_timeout`. axum's own `serve` has none of these, so 140 idle sockets could
//! hold the descriptors the polls need.
//!
//! The transport is any `AsyncRead + AsyncWrite` (plain TCP today; a TLS stream slots in the
//! same way). Timing is watched from outside hyper: the transport wrapper notes when bytes of a
//! new request arrive, the service wrapper when a request is being handled and when its
//! response body is done.

use crate::config::ServerSection;
use crate::metrics::FaultMetrics;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

/// How long connections get to finish their requests once the server is stopping; streams
/// (server-sent events) never finish and are cut here.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpLimits {
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_peer_connections: usize,
}

impl HttpLimits {
    pub(crate) fn from_config(s: &ServerSection) -> HttpLimits {
        HttpLimits {
            header_timeout: s.header_timeout,
            body_timeout: s.body_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections.max(1),
            max_peer_connections: s.max_peer_connections.max(1),
        }
    }
}

/// No value in an `AtomicU64` of milliseconds since the connection began.
const NONE: u64 = u64::MAX;

/// What the connection is doing, in milliseconds since it was accepted.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// First byte of a request head not yet handed to the service.
    head_since: AtomicU64,
    /// Last response finished (or the connection began) with nothing in flight since.
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // The classification saw the first bytes of the first request already.
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(NONE),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// When the connection is due to be closed, and why; `None` while a request is in flight.
    fn deadline(&self, l: &HttpLimits) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Acquire) {
            NONE => match self.idle_since.load(Ordering::Acquire) {
                NONE => None,
                t => Some((self.at(t) + l.idle_timeout, "idle_timeout")),
            },
            t => Some((self.at(t) + l.header_timeout, "header_timeout")),
        }
    }
}

/// The transport, noting when bytes arrive while no request is being handled.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let a = &self.activity;
            if a.in_flight.load(Ordering::Acquire) == 0 {
                let now = a.now();
                let _ =
                    a.head_since
                        .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Held from the call of the service until the response body is done (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(a: &Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        a.head_since.store(NONE, Ordering::Release);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The response body, ending the request's time in flight when it is done.
struct Tracked {
    inner: Body,
    done: Option<InFlight>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.done = None;
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimedOut(Duration);

/// The request body, failing once `body_timeout` has passed since the head (a slow drip of
/// bytes does not reset it).
struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    metrics: FaultMetrics,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(r) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(r.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.metrics
                .connections_closed
                .with_label_values(&["body_timeout"])
                .inc();
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.limit)))));
        }
        Poll::Pending
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves HTTP/1 on `io` until the client leaves, a timeout closes it, or the server stops.
/// Returns why it ended, for the metrics (`None`: the client or hyper ended it).
pub(super) async fn drive<T>(
    io: T,
    remote: crate::tls::Remote,
    app: Router,
    limits: HttpLimits,
    metrics: FaultMetrics,
    mut stopping: watch::Receiver<bool>,
) -> Option<&'static str>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let svc_activity = activity.clone();
    let svc_metrics = metrics.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = app.clone();
        let guard = InFlight::begin(&svc_activity);
        let limit = limits.body_timeout;
        let metrics = svc_metrics.clone();
        async move {
            let mut req = req.map(|inner| {
                Body::new(DeadlineBody {
                    inner,
                    sleep: Box::pin(tokio::time::sleep(limit)),
                    limit,
                    metrics,
                })
            });
            // Who is on the other end (with mutual TLS, which member): `api::peer` reads it.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(remote));
            let resp = match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(resp.map(|inner| Tracked {
                inner,
                done: Some(guard),
            }))
        }
    });
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our own head timeout (below) replaces hyper's, which would also count the idle time
    // between requests of a kept-alive connection against the head.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut cut_at: Option<Instant> = None;
    loop {
        let due = match cut_at {
            Some(t) => Some((t, "shutdown")),
            None => activity.deadline(&limits),
        };
        let sleep = async {
            match due {
                Some((t, _)) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = conn.as_mut() => return None,
            _ = sleep => {
                let Some((_, why)) = due else { continue };
                // Re-read: a request may have begun just now.
                let still = match cut_at {
                    Some(_) => true,
                    None => activity
                        .deadline(&limits)
                        .is_some_and(|(t, _)| t <= Instant::now()),
                };
                if still {
                    return Some(why);
                }
            }
            changed = stopping.changed(), if cut_at.is_none() => {
                if changed.is_err() || *stopping.borrow() {
                    conn.as_mut().graceful_shutdown();
                    cut_at = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
            max_peer_connections: 1,
        }
    }

    #[tokio::test]
    async fn deadlines_follow_the_request_cycle() {
        let a = Activity::new();
        let l = limits();
        // A new connection is reading its first head.
        let (t, why) = a.deadline(&l).expect("head deadline");
        assert_eq!(why, "header_timeout");
        assert!(t <= a.start + l.header_timeout);
        // In flight: no deadline of ours (the body has its own).
        let g = InFlight::begin(&a);
        assert_eq!(a.deadline(&l), None);
        drop(g);
        let (t, why) = a.deadline(&l).expect("idle deadline");
        assert_eq!(why, "idle_timeout");
        assert!(t >= a.start + l.idle_timeout);
    }
}
