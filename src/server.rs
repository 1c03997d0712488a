//! `emspool serve`: wires the subsystems of one server together and runs them until a signal.

use crate::alarms::AlarmTable;
use crate::api::{self, AppState};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::{NewEvent, Severity};
use crate::poll::Poller;
use crate::poll::traps::TrapService;
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Runs until `shutdown` resolves, then stops polling, flushes the event log and returns.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let id = config.server_id();
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
    let alarms = Arc::new(AlarmTable::new(id, events.clone()));
    let listener = tokio::net::TcpListener::bind(config.server.listen)
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

    let (poller, scheduler) = Poller::start(
        id,
        config.poll.clone(),
        config.credentials.clone(),
        alarms.clone(),
        events.clone(),
        metrics.clone(),
    );
    let cluster = Cluster::start(
        &config,
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
        config.elements.clone(),
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
        poller: poller.clone(),
        cluster,
        alarms,
        events: events.clone(),
        metrics,
        token: config.api.token.clone(),
        protect_metrics: config.api.protect_metrics,
        ready: Default::default(),
        traps,
    });
    let app = api::router(state.clone());
    state.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        "server {id} listening on http://{} with {} element(s)",
        config.server.listen,
        config.elements.len()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;

    tracing::info!("stopping: traps, polls, then the event log");
    for t in trap_tasks {
        t.abort();
    }
    poller.set_elements(Vec::new()).await;
    drop(poller);
    scheduler.abort();
    events.append(NewEvent::now(
        None,
        "server.stop",
        Severity::Info,
        format!("server {id} stopped"),
    ));
    events.close().await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
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
