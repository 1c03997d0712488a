//! `emspool serve`: wires the subsystems of one server together and runs them until a signal.

mod limits;
mod notify;
mod reload;

use crate::alarms::AlarmTable;
use crate::api::{self, AppState};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::{NewEvent, Severity};
use crate::poll::Poller;
use crate::traps::TrapService;
use anyhow::Context;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::signal::unix::{Signal, SignalKind};

/// Runs the server of the configuration read from `path` (`emspool serve --config`): on SIGHUP the
/// file is read again and, if valid, its inventory, credentials and log level are applied
/// without a restart (see [`reload::reload`]); an invalid file is logged and the running
/// configuration kept. Tells systemd (`$NOTIFY_SOCKET`) when it is ready, reloading, stopping.
pub(crate) async fn serve_file(
    path: PathBuf,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Installed before anything else: from here on a SIGHUP reloads instead of killing us.
    let hangups = tokio::signal::unix::signal(SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let started = start(&config).await?;
    // The reloader keeps the running configuration (moved, not copied: at 10,000 elements a
    // copy of the inventory is ~1 MB that nothing reads).
    started
        .run(
            shutdown,
            Some(Reload {
                hangups,
                path,
                config,
            }),
        )
        .await
}

/// What SIGHUP needs: the signal stream, the file, and the configuration running now.
pub(crate) struct Reload {
    hangups: Signal,
    path: PathBuf,
    config: Config,
}

/// One server with every subsystem started and its API socket bound, not yet answering.
pub(crate) struct Started {
    pub(crate) state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    scheduler: tokio::task::JoinHandle<()>,
    trap_tasks: Vec<tokio::task::JoinHandle<()>>,
    jetstream: Option<crate::northbound::jetstream::Northbound>,
    push: Push,
    element_count: usize,
    /// rustls configuration of the listener; None serves plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    handshake_failures: crate::tls::acceptor::HandshakeFailures,
    http_limits: limits::HttpLimits,
}

/// Opens the event log, binds the API socket and starts polling, the pool membership and the
/// trap receiver: the one wiring of a server, for `serve` and for in-process benchmarks.
pub(crate) async fn start(config: &Config) -> anyhow::Result<Started> {
    let id = config.server_id();
    limits::raise_open_files(config);
    crate::resolve::configure(config.poll.resolv_conf.as_deref());
    std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
        format!(
            "cannot create data_dir {}",
            config.server.data_dir.display()
        )
    })?;
    let db_path = config.server.data_dir.join("emspool.redb");
    let events = EventLog::open(&db_path, id, config.events.retention)
        .with_context(|| format!("cannot open event log {}", db_path.display()))?;
    let metrics = Metrics::new().context("metrics registry")?;
    let jetstream = match &config.events.jetstream {
        Some(js) => Some(
            crate::northbound::jetstream::start(
                js,
                id,
                config.events.retention,
                events.clone(),
                metrics.registry(),
            )
            .await
            .context("cannot start the JetStream publisher")?,
        ),
        None => None,
    };
    let alarms = Arc::new(AlarmTable::new(id, events.clone()));
    let tls = crate::tls::server_config(config).context("TLS")?;
    let handshake_failures = crate::tls::acceptor::HandshakeFailures {
        counter: tls_failure_counter(&metrics)?,
        log: Arc::new(crate::ratelog::RateLog::new(
            std::time::Duration::from_secs(60),
        )),
    };
    let listener = limits::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    events
        .append_durable(NewEvent::now(
            None,
            "server.start",
            Severity::Info,
            format!(
                "server {id} started (emspool {}) with {} element(s)",
                env!("CARGO_PKG_VERSION"),
                config.elements.len()
            ),
        ))
        .await
        .context("cannot write to the event log")?;
    if config.pool.is_some() && tls.is_none() && !crate::tls::is_loopback(&config.server.listen) {
        let text = format!(
            "the peer protocol runs WITHOUT TLS on {}: the pool secret travels in clear text and \
             anyone who sniffs it can speak for a member; set [server] tls_cert/tls_key and \
             [pool] ca (README, \"TLS and mutual TLS\")",
            config.server.listen
        );
        tracing::warn!("INSECURE: {text}");
        events.append(NewEvent::now(
            None,
            "server.insecure",
            Severity::Warning,
            text,
        ));
    }

    let lease = Arc::new(crate::lease::Lease::for_config(config));
    // Before anything polls: a new webhook starts from the log's end, and must not miss the
    // first raises.
    let push = start_push(config, &lease, &alarms, &events, &metrics)
        .await
        .context("cannot start the alarm push (alertmanager, webhooks)")?;
    let (poller, scheduler) = Poller::start(
        id,
        config.poll.clone(),
        config.credentials.clone(),
        alarms.clone(),
        metrics.clone(),
        lease,
    );
    let cluster = Cluster::start(
        config,
        poller.clone(),
        alarms.clone(),
        events.clone(),
        metrics.clone(),
    )
    .await
    .context("cannot start the pool membership")?;

    let (traps, trap_tasks) = TrapService::start(
        id,
        config.traps.as_ref(),
        cluster.clone(),
        poller.clone(),
        alarms.clone(),
        events.clone(),
        metrics.traps.clone(),
    )
    .await
    .context("cannot start the trap receiver")?;

    let state = Arc::new(AppState {
        id,
        poller,
        cluster,
        alarms,
        events,
        metrics,
        token: config.api.token.clone(),
        protect_metrics: config.api.protect_metrics,
        ready: Default::default(),
        traps,
        jetstream: jetstream.as_ref().map(|j| j.reader.clone()),
    });
    Ok(Started {
        state,
        listener,
        scheduler,
        trap_tasks,
        jetstream,
        push,
        element_count: config.elements.len(),
        tls,
        handshake_failures,
        http_limits: limits::HttpLimits::from_config(&config.server),
    })
}

/// The alarm push interfaces of one server.
struct Push {
    alertmanager: Option<crate::northbound::alertmanager::Alertmanager>,
    webhooks: Option<crate::northbound::webhook::Webhooks>,
}

async fn start_push(
    config: &Config,
    lease: &Arc<crate::lease::Lease>,
    alarms: &Arc<AlarmTable>,
    events: &EventLog,
    metrics: &Metrics,
) -> anyhow::Result<Push> {
    let alertmanager = match &config.alertmanager {
        Some(am) => {
            let console = am.console_url.clone().unwrap_or_else(|| own_url(config));
            Some(crate::northbound::alertmanager::start(
                am,
                console,
                alarms.clone(),
                events.clone(),
                lease.clone(),
                metrics.registry(),
            )?)
        }
        None => None,
    };
    let webhooks =
        crate::northbound::webhook::start(&config.webhooks, events.clone(), metrics.registry())
            .await?;
    Ok(Push {
        alertmanager,
        webhooks,
    })
}

/// This server's URL as its peers know it, else its listener's.
fn own_url(config: &Config) -> String {
    let me = config.server_id().0;
    if let Some(m) = config
        .pool
        .as_ref()
        .and_then(|p| p.members.iter().find(|m| m.id == me))
    {
        return m.url.clone();
    }
    let scheme = if config.server.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", config.server.listen)
}

fn tls_failure_counter(metrics: &Metrics) -> anyhow::Result<prometheus::IntCounter> {
    let c = prometheus::IntCounter::new(
        "emspool_tls_handshake_failures_total",
        "TLS handshakes refused (no or a wrong client certificate, bad protocol, timeout).",
    )?;
    metrics
        .registry()
        .register(Box::new(c.clone()))
        .context("register the TLS metric")?;
    Ok(c)
}

impl Started {
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Answers the API until `shutdown` resolves (reloading on SIGHUP when `reload` is given),
    /// then stops traps and polls and closes the event log.
    pub(crate) async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        reload: Option<Reload>,
    ) -> anyhow::Result<()> {
        let Started {
            state,
            listener,
            scheduler,
            trap_tasks,
            jetstream,
            push,
            element_count,
            tls,
            handshake_failures,
            http_limits,
        } = self;
        let id = state.id;
        let listen = listener.local_addr().context("API socket")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let tls = tls.map(|config| {
            Arc::new(limits::TlsAccept {
                acceptor: tokio_rustls::TlsAcceptor::from(config),
                failures: handshake_failures,
            })
        });
        let app = api::router(state.clone());
        let reloader = reload.map(|r| {
            tokio::spawn(reload::on_hangup(
                r.hangups,
                r.path,
                r.config,
                state.clone(),
            ))
        });
        state.ready.store(true, Ordering::Relaxed);
        tracing::info!(
            "server {id} listening on {scheme}://{listen} with {element_count} element(s)"
        );
        let status = format!("server {id} listening on {scheme}://{listen}");
        notify::ready(&status);
        let shutdown = async move {
            shutdown.await;
            notify::stopping();
        };
        limits::serve(
            listener,
            app,
            http_limits,
            state.metrics.faults.clone(),
            tls,
            shutdown,
        )
        .await;
        if let Some(r) = reloader {
            r.abort();
        }

        tracing::info!("stopping: traps, polls, then the event log");
        for t in trap_tasks {
            t.abort();
        }
        state.poller.set_elements(Vec::new()).await;
        scheduler.abort();
        if let Some(j) = jetstream {
            j.stop().await;
        }
        if let Some(a) = push.alertmanager {
            a.stop().await;
        }
        if let Some(w) = push.webhooks {
            w.stop().await;
        }
        state.events.append(NewEvent::now(
            None,
            "server.stop",
            Severity::Info,
            format!("server {id} stopped"),
        ));
        state.events.close().await;
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            // Without signal handlers only Ctrl-C through tokio's portable API is left.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
