//! `emspool serve`: wires the subsystems of one server together and runs them until a signal.

use crate::alarms::AlarmTable;
use crate::api::{self, AppState};
use crate::cluster::{Cluster, ClusterError};
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::{NewEvent, Severity};
use crate::poll::Poller;
use crate::poll::traps::TrapService;
use crate::{logging, notify};
use anyhow::Context;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::signal::unix::{Signal, SignalKind};

/// Runs until `shutdown` resolves, then stops polling, flushes the event log and returns.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run(config, None, shutdown).await
}

/// [`serve`] for a configuration read from `path` (`emspool serve --config`): on SIGHUP the
/// file is read again and, if valid, its inventory, credentials and log level are applied
/// without a restart (see [`reload`]); an invalid file is logged and the running
/// configuration kept. Tells systemd (`$NOTIFY_SOCKET`) when it is ready, reloading, stopping.
pub async fn serve_file(
    path: PathBuf,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run(config, Some(path), shutdown).await
}

async fn run(
    config: Config,
    path: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let id = config.server_id();
    crate::limits::raise_open_files(&config);
    // Installed before anything else: from here on a SIGHUP reloads instead of killing us.
    let hangups = match &path {
        Some(_) => Some(
            tokio::signal::unix::signal(SignalKind::hangup())
                .context("cannot install the SIGHUP handler")?,
        ),
        None => None,
    };
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
        jetstream: jetstream.as_ref().map(|j| j.reader.clone()),
    });
    let app = api::router(state.clone());
    let (listen, element_count) = (config.server.listen, config.elements.len());
    // The reloader keeps the running configuration (moved, not copied: at 10,000 elements a
    // copy of the inventory is ~1 MB that nothing reads).
    let reloader = match (path, hangups) {
        (Some(path), Some(hangups)) => Some(tokio::spawn(reload_on_hangup(
            hangups,
            path,
            config,
            state.clone(),
        ))),
        _ => None,
    };
    state.ready.store(true, Ordering::Relaxed);
    tracing::info!("server {id} listening on http://{listen} with {element_count} element(s)");
    let status = format!("server {id} listening on http://{listen}");
    notify::ready(&status);
    let shutdown = async move {
        shutdown.await;
        notify::stopping();
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed");
    if let Some(r) = reloader {
        r.abort();
    }
    served?;

    tracing::info!("stopping: traps, polls, then the event log");
    for t in trap_tasks {
        t.abort();
    }
    poller.set_elements(Vec::new()).await;
    drop(poller);
    scheduler.abort();
    if let Some(j) = jetstream {
        j.stop().await;
    }
    events.append(NewEvent::now(
        None,
        "server.stop",
        Severity::Info,
        format!("server {id} stopped"),
    ));
    events.close().await;
    Ok(())
}

async fn reload_on_hangup(
    mut hangups: Signal,
    path: PathBuf,
    mut running: Config,
    state: Arc<AppState>,
) {
    let status = format!(
        "server {} listening on http://{}",
        running.server.id, running.server.listen
    );
    while hangups.recv().await.is_some() {
        notify::reloading();
        let ok = match reload(&path, &mut running, &state) {
            Ok(summary) => {
                tracing::info!("configuration reloaded from {}: {summary}", path.display());
                state.events.append(NewEvent::now(
                    None,
                    "config.reloaded",
                    Severity::Info,
                    format!("configuration reloaded: {summary}"),
                ));
                true
            }
            Err(e) => {
                // One line naming the file, the key and the problem; secrets never appear.
                tracing::error!("configuration reload refused, running configuration kept: {e}");
                state.events.append(NewEvent::now(
                    None,
                    "config.reload_failed",
                    Severity::Warning,
                    format!("configuration reload refused: {e}"),
                ));
                false
            }
        };
        state.metrics.config_reloaded(ok);
        notify::ready(&status);
    }
}

/// Reads `path` again and applies what may change at run time: credentials (the next poll of
/// each element uses them), the inventory (`[[elements]]`: see `Cluster::reload_inventory`),
/// and `server.log_level`. Polls in progress go on. Other changed settings are reported as
/// needing a restart and stay as they run. Returns a summary for the log.
pub fn reload(
    path: &Path,
    running: &mut Config,
    state: &AppState,
) -> Result<String, crate::config::ConfigError> {
    let new = Config::load(path)?;
    let mut done = Vec::new();
    if new.credentials != running.credentials {
        state.poller.set_credentials(new.credentials.clone());
        done.push(format!("{} credential profile(s)", new.credentials.len()));
        for e in state.poller.owned() {
            if !new.credentials.contains_key(&*e.credential) {
                tracing::warn!(
                    "element {} refers to credential profile {:?}, which the file no longer defines",
                    e.name,
                    e.credential
                );
            }
        }
        running.credentials = new.credentials.clone();
    }
    if new.elements != running.elements {
        match state.cluster.reload_inventory(new.elements.clone()) {
            Ok(n) => done.push(format!("inventory ({n} element change(s) from the file)")),
            Err(ClusterError::NotMaster) => done.push(
                "inventory (this server is not the master: the file's elements apply when it is)"
                    .to_owned(),
            ),
            Err(e) => done.push(format!("inventory not applied: {e}")),
        }
        running.elements = new.elements.clone();
    }
    if new.server.log_level != running.server.log_level {
        match logging::set_level(&new.server.log_level) {
            Ok(logging::LevelChange::Overridden) => {
                done.push("log_level (RUST_LOG is set and wins)".to_owned())
            }
            Ok(_) => done.push(format!("log_level {:?}", new.server.log_level)),
            Err(e) => done.push(format!("log_level not applied: {e}")),
        }
        running.server.log_level = new.server.log_level.clone();
    }
    let restart: Vec<&str> = [
        ("server.id", new.server.id != running.server.id),
        ("server.listen", new.server.listen != running.server.listen),
        (
            "server.data_dir",
            new.server.data_dir != running.server.data_dir,
        ),
        (
            "server.log_format",
            new.server.log_format != running.server.log_format,
        ),
        ("poll", new.poll != running.poll),
        ("events", new.events != running.events),
        ("api", new.api != running.api),
        ("pool", new.pool != running.pool),
        ("traps", new.traps != running.traps),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect();
    if !restart.is_empty() {
        tracing::warn!(
            "changed in {} but applied only at restart: {}",
            path.display(),
            restart.join(", ")
        );
        done.push(format!("needs a restart: {}", restart.join(", ")));
    }
    if done.is_empty() {
        done.push("nothing changed that applies at run time".to_owned());
    }
    Ok(done.join("; "))
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
